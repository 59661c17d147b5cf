"""The plain-Numba fallback (``_plain``): chosen by FASTMNIST_INTRINSICS=0, on a CPU other than
x86-64 or one without masked vector loads, or when the intrinsics fail to compile; the parity
suite passes on it, and its kernels agree with the intrinsics of ``_lanes`` call by call."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import background
import numba
import numpy as np
import pytest

from fastmnist.backends import _jit, _plain, kernels, numba_cpu
from fastmnist.backends._plain import LANES

REPO = Path(__file__).resolve().parents[1]

X86 = platform.machine().lower() in ("x86_64", "amd64")

#: as ``_jit.PATH`` decides: the intrinsics are tried on x86-64 CPUs with masked vector loads
intrinsics_tried = pytest.mark.skipif(
    not (X86 and _jit.masked_loads_native()),
    reason="the intrinsics are only tried on x86-64 with masked vector loads")


def test_intrinsics_flag_names_the_path():
    assert numba_cpu.INTRINSICS is (_jit.PATH == "lanes")
    if os.environ.get("FASTMNIST_INTRINSICS", "1") == "0":
        assert not numba_cpu.INTRINSICS
        assert numba_cpu.nz_dot is _plain.nz_dot


@pytest.mark.skipif(not X86, reason="LLVM's x86 target names")
def test_cpus_without_masked_loads_take_the_plain_loops():
    """x86-64 CPUs before AVX (and Atom-class chips without it) have no masked vector load:
    LLVM splits each of the intrinsics' into a branch per lane, slower than the plain loops
    (the 784-128-10 epoch 2.6x). Asked of LLVM for the target, not from a list of names."""
    assert not _jit.masked_loads_native("x86-64", "")
    assert not _jit.masked_loads_native("goldmont", "")
    assert _jit.masked_loads_native("sandybridge", "")  # AVX
    assert _jit.masked_loads_native("haswell", "")
    assert _jit.masked_loads_native("skylake-avx512", "")
    assert _jit.masked_loads_native("x86-64", "+avx,+avx2")  # features named outright
    env = dict(os.environ, NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="")
    out = subprocess.run([sys.executable, "-c", "from fastmnist.backends import _jit; "
                          "print(_jit.PATH)"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "plain", out.stderr[-2000:]


@pytest.mark.skipif(not X86, reason="LLVM's x86 target names")
def test_the_compress_gather_only_where_the_cpu_has_vbmi2():
    """``vpcompressb`` packs a row's nonzero pixels on CPUs with AVX-512 VBMI2 (Ice Lake, Zen 4
    and later); elsewhere (AVX-512 without it, AVX2, SSE) LLVM could not lower the intrinsic,
    so the scalar gather must be compiled instead. Asked of LLVM for the target."""
    assert _jit.compress_native("icelake-server", "")
    assert _jit.compress_native("znver4", "")
    assert not _jit.compress_native("skylake-avx512", "")
    assert not _jit.compress_native("znver3", "")
    assert not _jit.compress_native("haswell", "")
    assert not _jit.compress_native("x86-64", "")
    assert _jit.compress_native("x86-64", "+avx512f,+avx512bw,+avx512vbmi2")
    assert kernels.COMPRESS == (numba_cpu.INTRINSICS and _jit.compress_native())
    gather = numba.njit(lambda row, cidx, cval: kernels._gather(row, cidx, cval))  # not cached
    gather(np.zeros(784, np.uint8), np.empty(784, np.uint16), np.empty(784, np.uint8))
    asm = "".join(gather.inspect_asm().values())
    assert ("vpcompressb" in asm) == kernels.COMPRESS


@intrinsics_tried
def test_a_cpu_without_vbmi2_gathers_without_it():
    """Compiled for a CPU without VBMI2 that this one can run (Skylake-X, AVX-512, where the
    host has AVX-512; else Haswell): no vpcompressb (the pshufb gather), right results."""
    from llvmlite import binding
    host = binding.get_host_cpu_features()
    cpu = ("skylake-avx512" if host.get("avx512f") else "haswell" if host.get("avx2")
           and host.get("fma") and host.get("bmi2") else None)
    if cpu is None:
        pytest.skip("no CPU target without VBMI2 that this host can run")
    code = ("import numpy as np; from fastmnist.backends import kernels; "
            "x = np.array([0, 3, 0, 0, 9] * 30, np.uint8); ci = np.empty(150, np.int32); "
            "cv = np.empty(150, np.uint8); n = kernels.gather_nonzeros(x, ci, cv); "
            "assert (ci[:n] == np.flatnonzero(x)).all() and (cv[:n] == x[x != 0]).all(); "
            "print(kernels.COMPRESS, kernels.PACKED)")
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "False True", out.stderr[-2000:]


@background.job(cost=260)
def plain_parity(folder):
    """The whole parity and gradient suite, in a fresh process on the fallback path (its slow
    tests, subprocesses for another CPU's intrinsics, are not the fallback's); then the steps
    split by units, in float64 (each dtype costs the fallback's kernels another compile). The
    plain loops' cache is left in `folder`."""
    env = background.env(FASTMNIST_INTRINSICS="0", NUMBA_CACHE_DIR=folder)
    return [background.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "-m", "not slow", *args], cwd=REPO, env=env, timeout=900)
            for args in (["tests/test_parity.py", "tests/test_gradients.py",
                          "tests/test_fallback.py::test_intrinsics_flag_names_the_path"],
                         ["-k", "float64", "tests/test_columns.py"])]


@pytest.mark.slow
@pytest.mark.background(plain_parity)
def test_parity_suite_on_the_plain_loops():
    for out in plain_parity.result():
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
        assert " passed" in out.stdout and "failed" not in out.stdout


@pytest.mark.slow
@pytest.mark.background(plain_parity)
@intrinsics_tried
def test_failing_intrinsics_fall_back():
    """A self-test that raises (as an LLVM without these intrinsics would) selects the plain
    loops, with a warning, and training still works (in the plain loops' cache, compiled)."""
    plain_parity.wait()
    script = """
import warnings
from fastmnist.backends import _lanes
def broken():
    raise RuntimeError("LLVM ERROR: cannot select llvm.masked.load")
_lanes.self_test = broken
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    from fastmnist.backends import numba_cpu
assert numba_cpu.INTRINSICS is False, numba_cpu.INTRINSICS
assert any("plain Numba loops" in str(x.message) for x in w), [str(x.message) for x in w]
import numpy as np
import fastmnist as fm
X = (np.random.default_rng(0).random((64, 784)) < 0.2).astype(np.uint8) * 200
y = np.arange(64) % 10
fm.MLP(hidden=(8,)).fit(X, y, epochs=1, batch_size=16, backend="numba", progress=False)
print("ok")
"""
    env = background.env(NUMBA_CACHE_DIR=plain_parity.folder, FASTMNIST_INTRINSICS="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---- each intrinsic against its plain twin, called from a compiled kernel ----------------------

if numba_cpu.INTRINSICS:
    import numba

    from fastmnist.backends import _lanes

    # not cached: Numba's cache keys on this file alone, and would keep stale intrinsics
    jit = numba.njit(fastmath=_jit.FASTMATH, error_model="numpy")

    def _caller(fn):
        @jit
        def dot(w, wo, h, idx, val, n, scale, b, relu, z):
            fn(w, wo, h, idx, val, n, scale, b, relu, z)
        return dot

    _DOT = {name: (_caller(getattr(_lanes, name)), _caller(getattr(_plain, name)))
            for name in ("nz_dot", "nz_dot_wide")}

    @jit
    def _outer_lanes(g, wo, h, idx, val, n, scale, bo, dz):
        _lanes.nz_outer(g, wo, h, idx, val, n, scale, bo, dz)

    @jit
    def _outer_plain(g, wo, h, idx, val, n, scale, bo, dz):
        _plain.nz_outer(g, wo, h, idx, val, n, scale, bo, dz)

    @jit
    def _rows_lanes(w, wo, h, n, dz, a, out):
        _lanes.rows_dot(w, wo, h, n, dz, a, out)

    @jit
    def _rows_plain(w, wo, h, n, dz, a, out):
        _plain.rows_dot(w, wo, h, n, dz, a, out)

    @jit
    def _smax_lanes(z, c, label, inv_n, dz):
        return _lanes.softmax_grad(z, c, label, inv_n, -64.0, dz)

    @jit
    def _smax_plain(z, c, label, inv_n, dz):
        return _plain.softmax_grad(z, c, label, inv_n, -64.0, dz)

TOL = {np.float32: 2e-6, np.float64: 1e-13}
needs_lanes = pytest.mark.skipif(not numba_cpu.INTRINSICS, reason="the intrinsics are off")


def _pixels(rng, n_nz, d_in=784):
    idx = np.sort(rng.choice(d_in, n_nz, replace=False)).astype(np.uint16)
    return idx, rng.integers(1, 256, n_nz).astype(np.uint8)


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h", list(range(1, 17)) + [17, 40, 64, 100, 130])
@pytest.mark.parametrize("n_nz", [0, 1, 2, 3, 4, 5, 7, 150])  # every remainder of the unroll
def test_nz_dot_matches(dtype, h, n_nz):
    rng = np.random.default_rng(h * 100 + n_nz)
    w = rng.standard_normal(784 * h).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    idx, val = _pixels(rng, n_nz)
    want = np.maximum(b + (val * dtype(1 / 255)) @ w.reshape(784, h)[idx], 0)
    name = "nz_dot" if h <= 16 else "nz_dot_wide"
    for fn in _DOT[name]:
        z = np.full(h + 3, 7, dtype)  # lanes past h untouched
        fn(w, 0, h, idx, val, n_nz, dtype(1 / 255), b, True, z)
        np.testing.assert_allclose(z[:h], want, rtol=TOL[dtype], atol=TOL[dtype] * 10)
        assert (z[h:] == 7).all()


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h", range(1, 17))
@pytest.mark.parametrize("n_nz", [0, 1, 3, 4, 5, 33])
def test_nz_outer_matches(dtype, h, n_nz):
    rng = np.random.default_rng(h * 100 + n_nz)
    idx, val = _pixels(rng, n_nz)
    dz = rng.standard_normal(h).astype(dtype)
    P = 784 * h + h
    outs = []
    for fn in (_outer_lanes, _outer_plain):
        g = np.ones(P + 5, dtype)
        fn(g, 0, h, idx, val, n_nz, dtype(1 / 255), 784 * h, dz)
        outs.append(g)
    want = np.ones(P + 5, dtype)
    want[:784 * h].reshape(784, h)[idx] += np.outer(val * dtype(1 / 255), dz)
    want[784 * h:P] += dz
    for g in outs:
        np.testing.assert_allclose(g, want, rtol=TOL[dtype], atol=TOL[dtype])


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h", range(1, 17))
def test_rows_dot_matches(dtype, h):
    rng = np.random.default_rng(h)
    n = 37
    w = rng.standard_normal(n * h).astype(dtype)
    dz = rng.standard_normal(h).astype(dtype)
    a = rng.standard_normal(n).astype(dtype)
    want = (w.reshape(n, h) @ dz) * (a > 0)
    for fn in (_rows_lanes, _rows_plain):
        out = np.empty(n, dtype)
        fn(w, 0, h, n, dz, a, out)
        np.testing.assert_allclose(out, want, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["random", "ties", "-inf", "nan", "huge spread"])
def test_softmax_grad_matches(dtype, case):
    rng = np.random.default_rng(0)
    z = rng.standard_normal(10).astype(dtype) * 3
    if case == "ties":
        z[[2, 5, 7]] = z.max() + 1  # argmax: the first of the ties
    elif case == "-inf":
        z[4] = -np.inf
    elif case == "nan":
        z[6] = np.nan
    elif case == "huge spread":
        z[1] = 200
    results = []
    for fn in (_smax_lanes, _smax_plain):
        dz = np.empty(10, dtype)
        s, mx, best = fn(z, 10, 3, dtype(0.25), dz)
        results.append((s, mx, best, dz))
    (s1, m1, b1, d1), (s2, m2, b2, d2) = results
    if case == "nan":
        assert np.isnan(d1).any() and np.isnan(d2).any()
        return
    e = np.exp(z - z.max())
    e[z - z.max() <= -64] = 0
    p = e / e.sum()
    want = (p - np.eye(10, dtype=dtype)[3]) * dtype(0.25)
    for s, mx, best, dz in results:
        assert best == int(np.argmax(z)) and mx == z.max()
        np.testing.assert_allclose(s, e.sum(), rtol=TOL[dtype] * 10)
        np.testing.assert_allclose(dz, want, rtol=TOL[dtype] * 10, atol=TOL[dtype])


#: measured: float32 at most 3 ulps, float64 at most 20 (through the division by the sum and
#: the multiplication back, each worth about an ulp, and the reduction's rounding)
ULPS = {np.float32: 4, np.float64: 32}


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_error_in_ulps(dtype):
    """softmax_grad's own exp (Cody-Waite + Taylor) against np.exp over [-64, 0]."""
    x = np.linspace(-63.9, 0, 4001).astype(dtype)
    got = np.empty(LANES, dtype)
    z = np.full(LANES, 0, dtype)
    errs = []
    for v in x:  # lane 0 holds v, lane 1 the max 0: dz[0] = e^v / s with s = 1 + e^v
        z[0] = v
        s, _, _ = _smax_lanes(z, 2, 1, dtype(1), got)
        e = np.float64(got[0]) * np.float64(s)  # e^v as the kernel computed it, nearly
        want = np.exp(np.float64(v))
        errs.append(abs(e - want) / float(np.spacing(dtype(want))))
    print(f"exp error {max(errs):.0f} ulps ({np.dtype(dtype).name})")
    assert max(errs) <= ULPS[dtype], max(errs)


def test_cache_key_covers_the_inlined_modules(monkeypatch):
    """An edit to _lanes.py (or _plain.py, _jit.py) changes the cache stamp of every kernel in
    the package, and each path caches in a folder of its own."""
    locator = _jit._KernelLocator.from_function(numba_cpu._relu.py_func, numba_cpu.__file__)
    assert locator is not None
    stamp = locator.get_source_stamp()
    assert locator.get_cache_path().endswith(os.sep + _jit.PATH)
    monkeypatch.setattr(_jit, "_SOURCES", "edited")
    assert locator.get_source_stamp() != stamp
    monkeypatch.setattr(_jit, "PATH", "plain" if _jit.PATH == "lanes" else "lanes")
    assert locator.get_cache_path().endswith(os.sep + _jit.PATH)
    # files outside the package keep Numba's own locators
    assert _jit._KernelLocator.from_function(test_cache_key_covers_the_inlined_modules,
                                             __file__) is None


def test_bench_header_names_the_path():
    from fastmnist.tools import head_to_head
    assert f"INTRINSICS={numba_cpu.INTRINSICS}" in head_to_head.machine()
    assert ("vpcompressb" in head_to_head.machine()) == kernels.COMPRESS
    assert ("pshufb" in head_to_head.machine()) == (kernels.PACKED and not kernels.COMPRESS)


@intrinsics_tried
def test_self_test_runs_once_per_cache(tmp_path):
    """A passed self-test leaves a marker in the cache folder; a warm start skips the test (a
    broken one would otherwise switch to the plain loops)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTMNIST_INTRINSICS="1")
    first = "from fastmnist.backends import numba_cpu; print(numba_cpu.INTRINSICS)"
    second = ("from fastmnist.backends import _lanes\n"
              "def broken():\n    raise RuntimeError('must not run')\n"
              "_lanes.self_test = broken\n" + first)
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600) for code in (first, second)]
    assert [o.stdout.strip() for o in outs] == ["True", "True"], [o.stderr[-500:] for o in outs]
    assert list(tmp_path.glob("fastmnist-lanes-ok-*"))
