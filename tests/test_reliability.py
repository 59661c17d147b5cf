"""Reliability: bad input, corrupt files, faults and interrupts never lose work or crash.

Every bad case must end in a fastmnist exception with a clear message (``fastmnist.errors``),
never a deep traceback from NumPy or Numba, and no file is ever left half-written. The CLI side
(one-line errors, exit codes, Ctrl-C and --resume in a real process) is in test_cli.py.
"""

import dataclasses
import hashlib
import os
import signal
import sys
import tempfile
import zipfile
from pathlib import Path

import background
import numpy as np
import pytest
from conftest import examples, learnable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmnist as fm
from fastmnist import data, train
from fastmnist.errors import DataError, DivergedError, InputError, ModelFileError

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["numpy", "numba"]


def toy(n=64, seed=0):
    """uint8 images (n, 784) whose label (0..9) is a bright pixel band: learnable, tiny."""
    return learnable(n, seed)


def weights(model):
    """The model's parameters as one bytes object, for bit-for-bit comparisons."""
    return b"".join(W.tobytes() + b.tobytes() for W, b in model.params)


def trained(X, y, backend, **kwargs):
    model = fm.MLP(hidden=(8,), seed=0, dtype=kwargs.pop("dtype", "float32"))
    kw = dict(epochs=1, batch_size=16, lr=0.1, backend=backend, progress=False)
    model.fit(X, y, **(kw | kwargs))
    return model


# --------------------------------------------------------------------------------------------
# 1. arrays through fit / predict / predict_proba / score
# --------------------------------------------------------------------------------------------

X0, Y0 = toy(40)

BAD_X = {
    "too few features": (X0[:, :100], "100 features"),
    "too many dimensions": (X0.reshape(40, 28, 28, 1), "2-D"),
    "a scalar": (np.uint8(3), "2-D"),
    "object dtype": (X0.astype(object), "dtype object"),
    "complex dtype": (X0.astype(np.complex64), "complex"),
    "bool dtype": (X0.astype(bool), "bool"),
    "strings": (X0.astype(str), "numeric"),
    "None": (None, "dtype object"),
    "ragged lists": ([[0] * 784, [0] * 783], "cannot be read as an array"),
    "NaN": (np.where(X0 > 250, np.nan, X0 / 255.0), "NaN or infinity"),
    "infinity": (np.where(X0 > 250, -np.inf, X0 / 255.0), "NaN or infinity"),
    "float64 overflowing float32": (np.where(X0 > 250, 1e300, X0 / 255.0), "NaN or infinity"),
    "empty": (X0[:0], "empty"),
    "empty, no features": (np.zeros((0, 0)), "0 features"),
    "float32 pixels not divided by 255": (X0.astype(np.float32), "divide by 255"),
    "float64 pixels not divided by 255": (X0.astype(np.float64), "divide by 255"),
    "standardized floats": ((X0 - X0.mean()) / X0.std(), "pixels=False"),
    "int64 beyond 255": (X0.astype(np.int64) * 2, "0..255"),
    "negative int16": (X0.astype(np.int16) - 1, "0..255"),
}

BAD_Y = {
    "label 10": (np.where(Y0 == 9, 10, Y0), r"0\.\.9"),
    "label -1": (np.where(Y0 == 0, -1, Y0), r"0\.\.9"),
    "huge uint64": (Y0.astype(np.uint64) + np.uint64(2**63), r"0\.\.9"),
    "non-integer floats": (Y0 + 0.5, "non-integer"),
    "NaN labels": (np.where(Y0 > 5, np.nan, Y0), "non-integer"),
    "strings": (Y0.astype(str), "integer class labels"),
    "bool": (Y0 > 4, "integer class labels"),
    "object": (Y0.astype(object), "integer class labels"),
    "2-D": (np.stack([Y0, Y0], axis=1), "1-D"),
    "one label short": (Y0[:-1], "40 samples but y has 39"),
    "ragged lists": ([1, [2, 3]] + [0] * 38, "cannot be read as an array"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X_is_input_error_everywhere(case, backend):
    X, match = BAD_X[case]
    model = fm.MLP(hidden=(8,), seed=0)
    before = weights(model)
    n = len(X) if isinstance(X, np.ndarray) and X.ndim else 40
    y = Y0[:n] if n <= 40 else Y0
    with pytest.raises(InputError, match=match):
        model.fit(X, y, epochs=1, backend=backend, progress=False)
    with pytest.raises(InputError, match=match):
        model.predict(X, backend=backend)
    with pytest.raises(InputError, match=match):
        model.predict_proba(X, backend=backend)
    with pytest.raises(InputError, match=match):
        model.score(X, y, backend=backend)
    with pytest.raises(InputError, match=match):  # bad validation data is refused up front
        model.fit(X0, Y0, epochs=1, backend=backend, progress=False, validation_data=(X, y))
    assert weights(model) == before  # nothing was trained


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(BAD_Y))
def test_bad_y_is_input_error(case, backend):
    y, match = BAD_Y[case]
    model = fm.MLP(hidden=(8,), seed=0)
    before = weights(model)
    with pytest.raises(InputError, match=match):
        model.fit(X0, y, epochs=1, backend=backend, progress=False)
    with pytest.raises(InputError, match=match):
        model.score(X0, y, backend=backend)
    assert weights(model) == before


@pytest.mark.parametrize("bad", [dict(epochs=True), dict(epochs=2.0), dict(batch_size=8.0),
                                 dict(lr=float("nan")), dict(lr="0.1"), dict(lr=0),
                                 dict(validation_data=X0), dict(validation_data=(X0,)),
                                 dict(threads=0, backend="numba"), dict(threads=0),
                                 dict(threads=1.5), dict(threads=True)])
def test_bad_fit_arguments(bad):
    with pytest.raises(InputError):
        fm.MLP(hidden=(4,)).fit(X0, Y0, progress=False, **({"backend": "numpy"} | bad))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.int8, np.uint64])
def test_integer_pixels_are_uint8_pixels(dtype, backend):
    """Pixels in 0..255 of any integer dtype (pandas gives int64) train and predict exactly as
    the same uint8 images; before, they were cast to float unscaled and trained to garbage."""
    X = X0 if dtype != np.int8 else X0 // 2  # int8 holds 0..127
    a, b = trained(X, Y0, backend), trained(X.astype(dtype), Y0, backend)
    assert weights(a) == weights(b)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X.astype(dtype)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_features_that_are_not_pixels(backend, tmp_path):
    """pixels=False takes any finite features, and the flag survives save/load."""
    Xs = (X0 - X0.mean(0)) / (X0.std(0) + 1)
    model = fm.MLP(hidden=(8,), seed=0, pixels=False)
    model.fit(Xs, Y0, epochs=2, batch_size=8, lr=0.05, backend=backend, progress=False)
    assert model.score(Xs, Y0) > 0.5
    model.save(tmp_path / "m.npz")
    loaded = fm.MLP.load(tmp_path / "m.npz")
    assert loaded.pixels is False
    np.testing.assert_array_equal(loaded.predict_proba(Xs), model.predict_proba(Xs))
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.where(Xs > 1, np.nan, Xs))


def test_numpy_scalars_are_fine_as_arguments():
    model = fm.MLP(hidden=(4,))
    h = model.fit(X0, Y0, epochs=np.int64(1), batch_size=np.int32(8), lr=np.float32(0.1),
                  backend="numpy", progress=False)
    assert len(h["loss"]) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_sample(backend):
    model = fm.MLP(hidden=(8,), seed=0)
    before = weights(model)
    h = model.fit(X0[:1], Y0[:1], epochs=2, backend=backend, progress=False)
    assert len(h["loss"]) == 2 and np.isfinite(h["loss"]).all()
    assert weights(model) != before
    assert model.predict(X0[:1], backend=backend).shape == (1,)
    assert model.predict(X0[0], backend=backend).shape == (1,)  # one flat image
    assert model.predict_proba(X0[0].reshape(28, 28)[None], backend=backend).shape == (1, 10)
    assert model.score(X0[:1], Y0[:1], backend=backend) in (0.0, 1.0)


def _memmap(path, X):
    """A real read-only np.memmap of X's bytes."""
    X.tofile(path)
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["strided rows", "fortran", "read-only", "memmap",
                                    "read-only float32", "float64 for float32", "int64 labels",
                                    "uint8 read-only labels", "list"])
def test_unusual_layouts_work_like_plain_arrays(tmp_path, backend, layout):
    X, y = toy(80)
    X_ref, y_ref = X[::2].copy(), y[::2].copy()
    if layout == "strided rows":
        X_in, y_in = X[:, ::1][::2], y[::2]
    elif layout == "fortran":
        X_in, y_in = np.asfortranarray(X_ref), y_ref
    elif layout == "read-only":
        X_in, y_in = X_ref.copy(), y_ref.copy()
        X_in.flags.writeable = y_in.flags.writeable = False
    elif layout == "memmap":
        X_in, y_in = _memmap(tmp_path / "x.u8", X_ref), _memmap(tmp_path / "y.i8", y_ref)
        assert not X_in.flags.writeable
    elif layout == "read-only float32":
        X_ref = (X_ref / np.float32(255)).astype(np.float32)
        X_in, y_in = X_ref.copy(), y_ref
        X_in.flags.writeable = False
    elif layout == "float64 for float32":
        X_ref = (X_ref / 255.0).astype(np.float32)
        X_in, y_in = X_ref.astype(np.float64), y_ref  # converted, not rejected
    elif layout == "int64 labels":
        X_in, y_in = X_ref, y_ref.astype(np.int64)
    elif layout == "uint8 read-only labels":
        X_in, y_in = X_ref, y_ref.astype(np.uint8)
        y_in.flags.writeable = False
    else:  # nested lists of floats already scaled
        X_ref = (X_ref / np.float32(255)).astype(np.float32)
        X_in, y_in = X_ref.tolist(), y_ref.tolist()
    ref = trained(X_ref, y_ref, backend, optimizer="adam", lr=1e-2)
    model = trained(X_in, y_in, backend, optimizer="adam", lr=1e-2)
    assert weights(model) == weights(ref)
    np.testing.assert_array_equal(model.predict_proba(X_in, backend=backend),
                                  ref.predict_proba(X_ref, backend=backend))
    assert model.score(X_in, y_in, backend=backend) == ref.score(X_ref, y_ref, backend=backend)


# --------------------------------------------------------------------------------------------
# 2. model files
# --------------------------------------------------------------------------------------------


def _saved_model_bytes():
    """A real saved model, with a history, a config and extra arrays, as bytes."""
    model = trained(*toy(40), "numpy", optimizer="momentum")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.npz"
        model.save(path, extra={"epoch": np.array(1), "partial": np.zeros(4)})
        return path.read_bytes()


_GOOD = _saved_model_bytes()


def _load_or_model_file_error(tmp_dir, blob):
    path = Path(tmp_dir) / "m.npz"
    path.write_bytes(blob)
    try:
        model = fm.MLP.load(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return None
    assert isinstance(model, fm.MLP)
    model.predict(X0[:2])  # whatever loads must also work
    return model


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_good_model_bytes_load(fuzz_dir):
    assert _load_or_model_file_error(fuzz_dir, _GOOD) is not None


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=4096))
def test_fuzz_load_random_bytes(fuzz_dir, blob):
    _load_or_model_file_error(fuzz_dir, blob)


@settings(max_examples=examples(400), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(edits=st.lists(st.tuples(st.integers(0, len(_GOOD) - 1), st.integers(0, 255)),
                      max_size=8),
       cut=st.integers(0, len(_GOOD)),
       insert=st.tuples(st.integers(0, len(_GOOD)), st.binary(max_size=32)))
def test_fuzz_load_mutated_model(fuzz_dir, edits, cut, insert):
    blob = bytearray(_GOOD)
    for pos, value in edits:
        blob[pos] = value
    pos, extra = insert
    blob = blob[:pos] + extra + blob[pos:]
    if cut:
        blob = blob[:cut]
    _load_or_model_file_error(fuzz_dir, bytes(blob))


CORRUPT = sorted((Path(__file__).parent / "data" / "corrupt_models").glob("*.npz"))


@pytest.mark.parametrize("path", CORRUPT, ids=[p.stem for p in CORRUPT])
def test_corrupt_model_regressions(path):
    """One changed byte in a .npy header inside a saved model: NumPy's header parser raised
    tokenize.TokenError, SyntaxError or TypeError through MLP.load (found by the fuzz test)."""
    with pytest.raises(ModelFileError, match=path.name) as e:
        fm.MLP.load(path)
    assert "allow_pickle" not in str(e.value)


def test_non_finite_weights_are_refused(tmp_path):
    model = trained(*toy(40), "numpy")
    model.params[0][0][3, 1] = np.nan
    model.save(tmp_path / "nan.npz")
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        fm.MLP.load(tmp_path / "nan.npz")


with np.load(__import__("io").BytesIO(_GOOD)) as _f:
    _GOOD_ARRAYS = {k: _f[k] for k in _f.files}

_ARRAYS = st.one_of(
    st.integers(-5, 2**40).map(np.array),
    st.floats(allow_nan=True, allow_infinity=True).map(np.array),
    st.text(max_size=20).map(np.array),
    st.lists(st.integers(-3, 50), max_size=5).map(lambda v: np.array(v, dtype=np.int64)),
    st.sampled_from([np.zeros((784, 8), np.float32), np.zeros((784, 8), np.float64),
                     np.zeros((8,), np.float32), np.zeros((8, 10), np.float16),
                     np.zeros((2, 2, 2)), np.array(b"bytes"), np.array("[1, 2]"),
                     np.array('{"epochs": 1}'), np.array("not json"), np.array(["a", "b"]),
                     np.array([784, 8, 10]), np.array([784, 0, 10]), np.array([784, 10**9, 10]),
                     np.array([784.0, 8.0, 10.0]), np.array(2), np.array(-1)]),
)


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(changes=st.dictionaries(st.sampled_from(sorted(_GOOD_ARRAYS)),
                               st.one_of(st.none(), _ARRAYS), max_size=3))
def test_fuzz_load_mangled_arrays(fuzz_dir, changes):
    """Arrays removed (None) or replaced by wrong shapes, dtypes and values."""
    arrays = dict(_GOOD_ARRAYS)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = Path(fuzz_dir) / "mangled.npz"
    np.savez(path, **arrays)
    _load_or_model_file_error(fuzz_dir, path.read_bytes())


def test_load_refuses_non_models(tmp_path):
    for name, blob in {"empty": b"", "text": b"hello", "zip": _zip_bytes(),
                       "npy": _npy_bytes(), "gz": __import__("gzip").compress(_GOOD)}.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(blob)
        with pytest.raises(ModelFileError, match=f"{name}.npz"):
            fm.MLP.load(path)
    with pytest.raises(ModelFileError):
        fm.MLP.load(tmp_path)  # a folder
    with pytest.raises(FileNotFoundError):
        fm.MLP.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("field,offset,value", [("version needed to extract", 6, 0xFF),
                                                 ("compression method", 10, 99),
                                                 ("general purpose flags", 8, 0x20)])
def test_load_unsupported_zip_features(tmp_path, field, offset, value):
    """Headers zipfile answers with NotImplementedError, not a BadZipFile."""
    blob = bytearray(_GOOD)
    for start in range(len(blob)):  # every central-directory entry
        if blob[start:start + 4] == b"PK\x01\x02":
            blob[start + offset] = value
    path = tmp_path / "odd.npz"
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="odd.npz"):
        fm.MLP.load(path)


def _zip_bytes():
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a model")
    return buf.getvalue()


def _npy_bytes():
    import io
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


class _Evil:
    """Unpickling this would create the file named by its argument."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    arrays = dict(_GOOD_ARRAYS)
    arrays["config"] = np.array([_Evil(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)  # an npz member holding a pickle
    import pickle
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(_Evil(marker)))  # a bare pickle
    for name in ("evil.npz", "raw.npz"):
        with pytest.raises(ModelFileError) as e:
            fm.MLP.load(tmp_path / name)
        assert "allow_pickle" not in str(e.value)  # NumPy's advice, wrong advice here
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# 3. writes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_crash_mid_save_keeps_previous_model(tmp_path, monkeypatch, failure):
    old = fm.MLP(hidden=(8,), seed=1)
    path = tmp_path / "model.npz"
    old.save(path)
    good = path.read_bytes()
    real_savez = np.savez

    def crashing_savez(f, **arrays):
        real_savez(f, **arrays)  # write everything ...
        f.truncate(f.tell() // 2)  # ... then lose half of it and fail
        raise failure

    monkeypatch.setattr(np, "savez", crashing_savez)
    new = fm.MLP(hidden=(8,), seed=2)
    with pytest.raises(type(failure)):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert weights(fm.MLP.load(path)) == weights(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        fm.MLP(hidden=(4,)).save(tmp_path / "no" / "such" / "m.npz")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 4. environment
# --------------------------------------------------------------------------------------------


def _tiny_mnist(monkeypatch, folder):
    """Four tiny IDX files in `folder`, with data.SHA256 patched to their hashes."""
    rng = np.random.default_rng(0)
    arrays = {data.TRAIN_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
              data.TRAIN_LABELS: rng.integers(0, 10, 6, dtype=np.uint8),
              data.TEST_IMAGES: rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              data.TEST_LABELS: rng.integers(0, 10, 4, dtype=np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data.write_idx(folder / (name + ".gz"), arr)
    monkeypatch.setattr(data, "SHA256", {n: hashlib.sha256(data.idx_bytes(a)).hexdigest()
                                         for n, a in arrays.items()})
    return arrays


@pytest.mark.parametrize("where", ["a regular file", "under a regular file"])
def test_unwritable_cache_still_loads(tmp_path, monkeypatch, where):
    """The cache cannot be written: the downloaded data is still returned, with a warning."""
    monkeypatch.delenv("FASTMNIST_DATA", raising=False)
    mirror = tmp_path / "mirror"
    arrays = _tiny_mnist(monkeypatch, mirror)
    monkeypatch.setattr(data, "MIRRORS", (mirror.as_uri() + "/",))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = blocker if where == "a regular file" else blocker / "cache"
    with pytest.warns(RuntimeWarning, match="cannot write the MNIST cache"):
        X_train, y_train, X_test, y_test = data.load_mnist(cache_dir=cache, progress=False)
    np.testing.assert_array_equal(y_test, arrays[data.TEST_LABELS])
    assert X_train.shape == (6, 784)


def test_no_network_empty_cache_says_what_was_tried(tmp_path, monkeypatch, offline):
    monkeypatch.delenv("FASTMNIST_DATA", raising=False)
    for kwargs in (dict(download=False), dict()):
        with pytest.raises(DataError) as info:
            data.load_mnist(cache_dir=tmp_path / "empty", progress=False, **kwargs)
        msg = str(info.value)
        assert f"cache {tmp_path / 'empty'}: not cached" in msg
        assert "FASTMNIST_DATA=" in msg and "data_dir=" in msg  # how to provide the files
        if kwargs:
            assert "skipped (download=False)" in msg
        else:
            assert all(base in msg for base in data.MIRRORS) and data.PYPI_FALLBACK in msg


_TRAIN_SCRIPT = """
import os, sys, warnings
import numpy as np
sys.path.insert(0, os.environ["T_TESTS"])
from conftest import random_pixels
import fastmnist as fm
from fastmnist.backends import _jit
X = random_pixels(64, 784); y = np.arange(64) % 10
model = fm.MLP(hidden=(8,), seed=0)
h = model.fit(X, y, epochs=1, batch_size=16, backend="numba", threads=4, progress=False)
assert np.isfinite(h["loss"]).all(), h
import numba
print("cache", _jit.CACHE, os.environ.get("NUMBA_CACHE_DIR"), "threads", numba.get_num_threads())
"""


def _run_training(env_changes, folder):
    env = background.env(PYTHONPATH=str(REPO), T_TESTS=str(REPO / "tests"), **env_changes)
    return background.run([sys.executable, "-c", _TRAIN_SCRIPT], env=env, cwd=str(folder),
                          timeout=600)


def _train_output(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


@background.job(cost=45)
def unwritable_cache(folder):
    """Training with NUMBA_CACHE_DIR, HOME and XDG_CACHE_HOME all unwritable (paths under a
    regular file); compiles everything into the folder chosen instead."""
    blocker = os.path.join(folder, "file")
    open(blocker, "w").close()
    proc = _run_training({"NUMBA_CACHE_DIR": os.path.join(blocker, "numba"),
                          "HOME": os.path.join(blocker, "home"),
                          "XDG_CACHE_HOME": os.path.join(blocker, "xdg")}, folder)
    return blocker, proc


@pytest.mark.slow
@pytest.mark.background(unwritable_cache)
def test_unwritable_numba_cache_falls_back():
    blocker, proc = unwritable_cache.result()
    out = _train_output(proc)
    assert out[:2] == ["cache", "True"]
    chosen = out[2]
    assert not chosen.startswith(blocker) and os.path.isdir(chosen)


def test_numba_num_threads_1(tmp_path):
    out = _train_output(_run_training({"NUMBA_NUM_THREADS": "1"}, tmp_path))
    assert out[-2:] == ["threads", "1"]  # threads=4 asked, clamped to what Numba has


def test_numba_cache_choice(monkeypatch, tmp_path):
    from fastmnist.backends import _jit
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "ok"))
    assert _jit._choose_cache_dir() and os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "ok")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "x"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _jit._choose_cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "xdg" / "fastmnist" / "numba")
    monkeypatch.setattr(_jit, "_writable", lambda path: False)  # nothing writable at all
    assert _jit._choose_cache_dir() is False and "NUMBA_CACHE_DIR" not in os.environ


# --------------------------------------------------------------------------------------------
# 5. training faults: divergence, Ctrl-C and resume
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,lr", [("float32", 1e30), ("float64", 1e307)])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_divergence_stops_with_finite_weights(backend, dtype, lr, optimizer):
    """The model is rolled back to weights that still give finite predictions."""
    X, y = toy(200)
    model = fm.MLP(hidden=(16,), dtype=dtype, seed=0)
    model.fit(X, y, epochs=1, batch_size=20, lr=0.05, backend=backend, progress=False)
    with pytest.raises(DivergedError, match="too high"):
        model.fit(X, y, epochs=5, batch_size=20, lr=lr, optimizer=optimizer, backend=backend,
                  progress=False)
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in model.params)
    assert len({len(v) for v in model.history.values()}) == 1  # complete epochs only
    assert np.isfinite(model.predict_proba(X, backend=backend)).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_on_the_very_last_update(backend):
    """One full-batch step whose loss is finite but whose update overflows float32."""
    X, y = toy(50)
    model = fm.MLP(hidden=(8,), seed=0)
    before = weights(model)
    with pytest.raises(DivergedError, match="weights became non-finite"):
        model.fit(X, y, epochs=1, batch_size=None, lr=1e300, backend=backend, progress=False)
    assert weights(model) == before  # the last finite weights


def _sigint_at(epoch_to_hit):
    """An on_epoch callback that sends this process a real SIGINT after epoch `epoch_to_hit`."""
    def on_epoch(epoch, history):
        if epoch == epoch_to_hit:
            os.kill(os.getpid(), signal.SIGINT)
    return on_epoch


FIT = dict(epochs=3, batch_size=10, lr=0.02, optimizer="adam", schedule="onecycle",
           progress=False)


def _interrupted_after_one_epoch():
    """(X, y, model): a FIT run on the NumPy backend, stopped by Ctrl-C after its first
    epoch, so that ``model.checkpoint`` holds where it stopped."""
    X, y = toy(80)
    model = fm.MLP(hidden=(12,), seed=4)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, backend="numpy", on_epoch=_sigint_at(0), **FIT)
    return X, y, model


def _sigint_in_chunk(monkeypatch, backend, call_to_hit):
    """Send a real SIGINT during the backend's `call_to_hit`-th train_epoch call (a chunk)."""
    be = fm.backends.get(backend)
    real, calls = be.train_epoch, []

    def train_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == call_to_hit:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)
    monkeypatch.setattr(be, "train_epoch", train_epoch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_history_does_not_depend_on_the_chunks(backend, monkeypatch):
    """Chunk lengths follow measured step times (``governor.chunk_steps``), so two runs of
    the same fit may cut an epoch differently: the weights and every history figure must come
    out the same bits either way."""
    runs = []
    for chunk in (3, 7, 128):
        monkeypatch.setattr(train, "CHUNK_STEPS", chunk)
        monkeypatch.setattr("fastmnist.governor.CHUNK_SECONDS", 0)
        X, y = toy(2000)
        # float64: float32 losses add up exactly in the float64 sum, in any order
        model = fm.MLP(hidden=(12,), seed=4, dtype="float64")
        model.fit(X, y, backend=backend, threads=1, **FIT)
        runs.append(model)
    for other in runs[1:]:
        assert other.history["loss"] == runs[0].history["loss"]
        assert other.history["accuracy"] == runs[0].history["accuracy"]
        for (W, b), (W2, b2) in zip(other.params, runs[0].params):
            assert np.array_equal(W, W2) and np.array_equal(b, b2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("how", ["SIGINT mid-epoch", "SIGINT at the epoch's end",
                                 "KeyboardInterrupt in on_epoch"])
def test_interrupt_and_resume_is_bit_identical(backend, how, monkeypatch):
    monkeypatch.setattr(train, "CHUNK_STEPS", 3)  # 8 steps an epoch: stop mid-epoch
    monkeypatch.setattr("fastmnist.governor.CHUNK_SECONDS", 0)  # just those
    X, y = toy(80)
    val = (X[:20], y[:20])
    ref = fm.MLP(hidden=(12,), seed=4)
    ref.fit(X, y, backend=backend, validation_data=val, threads=1, **FIT)

    model = fm.MLP(hidden=(12,), seed=4)
    on_epoch = None
    if how == "SIGINT mid-epoch":  # chunks of 3, 3, 2 steps: call 5 is epoch 2's second
        _sigint_in_chunk(monkeypatch, backend, 5)
    elif how == "SIGINT at the epoch's end":
        on_epoch = _sigint_at(0)
    else:
        def on_epoch(epoch, history):
            if epoch == 0:
                raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, backend=backend, validation_data=val, threads=1, on_epoch=on_epoch,
                  **FIT)
    ckpt = model.checkpoint
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert all(np.isfinite(W).all() for W, _ in model.params)
    if how == "SIGINT mid-epoch":  # stopped at the end of the chunk it arrived in
        assert (ckpt.epoch, ckpt.step, ckpt.t) == (1, 6, 14)
    else:  # stopped at the end of the epoch, where the interrupt arrived
        assert (ckpt.epoch, ckpt.step, ckpt.t) == (1, 0, 8)
    monkeypatch.undo()  # the resumed runs below are not interrupted ...
    monkeypatch.setattr(train, "CHUNK_STEPS", 3)  # ... and run in the same chunks
    monkeypatch.setattr("fastmnist.governor.CHUNK_SECONDS", 0)  # just those
    assert all(len(v) == 1 for v in model.history.values())
    assert model.history["loss"] == ref.history["loss"][:1]

    # through a checkpoint file, as `fastmnist train --resume` does
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.npz"
        model.save(path, extra=ckpt.to_arrays())
        resumed, extra = fm.MLP.load(path, return_extra=True)
    assert weights(resumed) == weights(model)
    ckpt2 = train.Checkpoint.from_arrays(extra, resumed.history, len(resumed.params))
    for m, c in ((model, ckpt), (resumed, ckpt2)):
        h = m.fit(X, y, backend=backend, validation_data=val, threads=1, checkpoint=c, **FIT)
        assert weights(m) == weights(ref)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert h[key] == ref.history[key], key
        assert len(h["epoch_seconds"]) == 3 and m.checkpoint is None


def test_stale_checkpoint_is_cleared_by_a_new_fit():
    X, y = toy(40)
    model = fm.MLP(hidden=(4,))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=2, backend="numpy", progress=False, on_epoch=_sigint_at(0))
    assert model.checkpoint is not None

    def stop(epoch, history):
        assert model.checkpoint is None  # the old one is gone while the new fit runs
    model.fit(X, y, epochs=1, backend="numpy", progress=False, on_epoch=stop)
    assert model.checkpoint is None


def test_checkpoint_that_does_not_fit_is_refused():
    X, y, model = _interrupted_after_one_epoch()
    ckpt = model.checkpoint
    before = weights(model)
    bad_runs = [(dict(FIT, batch_size=16), ckpt),  # other batches: a meaningless position
                (dict(FIT, optimizer="momentum"), ckpt),  # other optimizer state
                (dict(FIT, optimizer="sgd"), ckpt),
                (FIT, dataclasses.replace(ckpt, epoch=5))]  # past the end
    for kw, c in bad_runs:
        with pytest.raises(InputError, match="cannot resume"):
            model.fit(X, y, backend="numpy", checkpoint=c, **kw)
    with pytest.raises(InputError, match="history"):  # validation data now, none then
        model.fit(X, y, backend="numpy", checkpoint=ckpt, validation_data=(X, y), **FIT)
    with pytest.raises(InputError, match="checkpoint"):
        model.fit(X, y, backend="numpy", checkpoint={"epoch": 1}, **FIT)
    assert weights(model) == before
    with pytest.raises(InputError, match="checkpoint"):
        train.Checkpoint.from_arrays({"epoch": np.zeros(3), "step": 1, "t": 1, "partial": 0},
                                     {}, 2)


def test_checkpoint_file_format_is_unchanged(tmp_path):
    """A checkpoint file as `fastmnist train` wrote it before Checkpoint was a type (these
    array names) still resumes, and to_arrays still writes exactly these names."""
    X, y, model = _interrupted_after_one_epoch()
    ckpt = model.checkpoint
    assert isinstance(ckpt, train.Checkpoint) and "epoch=1, step=0, t=8" in repr(ckpt)
    old = {"epoch": np.int64(1), "step": np.int64(0), "t": np.int64(8), "partial": np.zeros(4)}
    # Adam's state: slots m and v, each (W, b) for each of the 2 layers
    old.update({f"state_{s}_{i}_{j}": ckpt.state[s][i][j]
                for s in range(2) for i in range(2) for j in range(2)})
    arrays = ckpt.to_arrays()
    assert sorted(arrays) == sorted(old)
    assert all(np.array_equal(arrays[k], v) and arrays[k].dtype == np.asarray(v).dtype
               for k, v in old.items())
    model.save(tmp_path / "old.npz", extra=old)
    loaded, extra = fm.MLP.load(tmp_path / "old.npz", return_extra=True)
    resumed = train.Checkpoint.from_arrays(extra, loaded.history, len(loaded.params))
    loaded.fit(X, y, backend="numpy", checkpoint=resumed, **FIT)
    model.fit(X, y, backend="numpy", checkpoint=ckpt, **FIT)
    assert weights(loaded) == weights(model)


def test_checkpoint_state_is_used_in_place_and_a_dict_is_refused():
    X, y, model = _interrupted_after_one_epoch()
    ckpt = model.checkpoint
    with pytest.raises(dataclasses.FrozenInstanceError):
        ckpt.epoch = 0
    m_before = ckpt.state[0][0][0].copy()
    with pytest.raises(InputError, match="expected a fastmnist.train.Checkpoint, got dict"):
        model.fit(X, y, backend="numpy", checkpoint=vars(ckpt).copy(), **FIT)
    model.fit(X, y, backend="numpy", checkpoint=ckpt, **FIT)
    assert not np.array_equal(ckpt.state[0][0][0], m_before)  # the resumed run updated it


# --------------------------------------------------------------------------------------------
# 6. determinism
# --------------------------------------------------------------------------------------------


def _run(backend, dtype, threads=None, seed=3):
    X, y = toy(300)
    model = fm.MLP(hidden=(20, 10), dtype=dtype, seed=seed)
    model.fit(X, y, epochs=2, batch_size=32, lr=0.01, optimizer="adam", schedule="cosine",
              backend=backend, threads=threads, weight_decay=1e-4, progress=False)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend,threads", [("numpy", None), ("numba", 1), ("numba", 2)])
def test_same_seed_same_bits(backend, dtype, threads):
    a, b = _run(backend, dtype, threads), _run(backend, dtype, threads)
    assert weights(a) == weights(b)
    assert a.history["loss"] == b.history["loss"]
    assert weights(_run(backend, dtype, threads, seed=4)) != weights(a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_count_changes_nothing(dtype):
    """A batch is summed in one part per thread the machine has, whatever the threads running
    them: threads=1, threads=2 and the governor's choice (threads=None) give the same bits."""
    one = _run("numba", dtype, 1)
    for threads in (2, None):
        other = _run("numba", dtype, threads)
        assert weights(other) == weights(one)
        assert other.history["loss"] == one.history["loss"]


def _compiled_signatures():
    """{kernel name: its compiled signatures} over the Numba backend's modules."""
    import numba

    from fastmnist.backends import columns, gemm, kernels, numba_cpu
    return {f"{mod.__name__}.{name}": set(map(str, fn.signatures))
            for mod in (numba_cpu, columns, gemm, kernels) for name, fn in vars(mod).items()
            if isinstance(fn, numba.core.registry.CPUDispatcher)}


@pytest.mark.parametrize("hidden", [(8,), (64,)], ids=["rows", "columns"])
def test_read_only_inputs_reuse_the_compiled_kernels(hidden):
    """A read-only array is a type of its own to Numba: the inputs are made writable (copied
    when they are not) before they reach a kernel, so that a read-only memmap costs no second
    compile of every kernel."""
    X, y = learnable(96)
    Xf = X.astype(np.float32) / 255

    def run(X, y, Xf):
        model = fm.MLP(hidden=hidden, seed=0)
        model.fit(X, y, epochs=1, batch_size=32, backend="numba", threads=2, progress=False)
        return model.predict(X, backend="numba"), model.predict_proba(Xf, backend="numba")

    expected = run(X, y, Xf)
    before = _compiled_signatures()
    for a in (X, y, Xf):
        a.setflags(write=False)
    got = run(X, y, Xf)
    assert _compiled_signatures() == before
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
