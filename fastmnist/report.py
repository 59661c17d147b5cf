"""The trade-off study behind ``fastmnist study``: sweeps -> numbers -> report.md + PNG plots.

Seven sweeps, each answering "what does this buy, and when does it stop paying?":

1. epoch time vs batch size (NumPy reference, Numba, PyTorch when installed);
2. 1 vs 2 (or more) threads;
3. float32 vs float64;
4. the cost of Python in the loop (one compiled call per batch vs per epoch);
5. dense vs zero-skipping layer 1;
6. achieved GFLOP/s and percent of the machine's measured GEMM roof, for all of the above;
7. test accuracy vs training seconds for the ``seed``, ``default`` and ``fast98`` recipes.

Every timing is the median of runs interleaved round-robin with the other contenders of its
sweep (:func:`fastmnist.bench.interleaved`), so that a noisy, shared machine slows them all
alike; each contender's result is checked (finite losses) before it is timed and after.
The sentences of the report are derived from the measured numbers, not written in advance.

Plots need matplotlib (the ``plot`` extra); figures are drawn on the Agg canvas without
pyplot, and every file is written atomically.
"""

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import bench
from ._atomic import atomic_write
from .backends import numba_cpu, numpy_ref
from .model import init_params
from .optim import Optimizer, init_state

#: below this ratio two timings are reported as "about the same" (a shared machine is noisy)
SAME = 1.10

PLOTS = {
    "batch_size": "batch_size.png",
    "threads": "threads.png",
    "dtype": "dtype.png",
    "python_overhead": "python_overhead.png",
    "sparsity": "sparsity.png",
    "gflops": "gflops.png",
    "accuracy": "accuracy_vs_time.png",
}


# ---- what a run measures -----------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How much to measure: the full study or the ``--quick`` smoke test."""

    quick: bool
    repeats: int
    batch_sizes: tuple
    #: rows timed per call for small batches (batch size -> rows); others: max_rows
    small_rows: dict
    #: rows timed per call at most (None: a whole epoch)
    max_rows: int | None
    thread_batches: tuple
    overhead_batches: tuple
    dtype_cases: tuple
    sparsity_sizes: tuple
    #: recipe -> epochs override (None: the recipe as written)
    recipe_epochs: dict | None


FULL = Plan(quick=False, repeats=5, batch_sizes=(1, 8, 32, 128, 1024, 8192, 60000),
            small_rows={1: 3000, 8: 12000}, max_rows=None,
            thread_batches=(32, 128, 1024, 60000), overhead_batches=(32, 128),
            dtype_cases=(((784, 128, 10), 128), ((784, 10, 10), 60000)),
            sparsity_sizes=((784, 10, 10), (784, 128, 10)), recipe_epochs=None)

QUICK = Plan(quick=True, repeats=3, batch_sizes=(1, 32, 1024), small_rows={1: 256},
             max_rows=4096, thread_batches=(128,), overhead_batches=(128,),
             dtype_cases=(((784, 128, 10), 128),),
             sparsity_sizes=((784, 10, 10), (784, 128, 10)),
             recipe_epochs={"seed": 20, "default": 1, "fast98": 1})


@dataclass
class Timing:
    """One contender of one sweep: the seconds of each timed call and what a call did."""

    sweep: str
    name: str
    backend: str
    sizes: tuple
    batch_size: int
    dtype: str
    rows: int              # rows (images) processed per timed call
    n: int                 # rows of a whole epoch, to scale a fraction of one
    times: list
    roof: float            # measured GEMM roof of this dtype, GFLOP/s
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def median(self):
        return float(np.median(self.times))

    @property
    def epoch_s(self):
        """Seconds per epoch (n rows), scaled from the rows timed."""
        return self.median * self.n / self.rows

    @property
    def images_s(self):
        return self.rows / self.median

    @property
    def gflops(self):
        """Dense-equivalent GFLOP/s: skipped zeros count as work done."""
        return bench.train_flops(list(self.sizes), self.rows) / self.median / 1e9

    @property
    def pct_roof(self):
        return 100.0 * self.gflops / self.roof

    @property
    def spread(self):
        """(max - min) / median of the timed calls, in %."""
        return 100.0 * (max(self.times) - min(self.times)) / self.median

    @property
    def fraction(self):
        return self.rows < self.n

    def as_dict(self):
        d = asdict(self)
        d.update(median_s=self.median, epoch_s=self.epoch_s, images_per_s=self.images_s,
                 gflops=self.gflops, pct_roof=self.pct_roof, spread_pct=self.spread)
        return d


@dataclass
class Spec:
    """A contender before it is timed: a callable plus the metadata of its Timing."""

    name: str
    fn: object
    backend: str
    sizes: tuple
    batch_size: int
    dtype: str
    rows: int
    threads: int | None = None
    extra: dict = field(default_factory=dict)
    last: object = None


# ---- contenders ----------------------------------------------------------------------------

def _state(sizes, dtype, init="he", optimizer="sgd"):
    params = init_params(list(sizes), np.dtype(dtype), init, np.random.default_rng(0))
    opt = Optimizer(optimizer)
    return params, opt, init_state(params, opt)


def _epoch_fn(be, data, y, order, batch_size, sizes, dtype, lr=0.05, chunk=None):
    """A callable running SGD over `order` with backend module `be`, `chunk` steps per call
    of ``be.train_epoch`` (None: all steps in one call); returns (losses, n_correct)."""
    params, opt, state = _state(sizes, dtype)
    steps = -(-len(order) // batch_size)
    lrs = np.full(steps, lr)
    if chunk is None or chunk >= steps:
        def run():
            return be.train_epoch(params, state, opt, data, y, order, batch_size, lrs, 0)
        return run
    losses = np.empty(steps)

    def run_chunked():
        correct = 0
        for s in range(0, steps, chunk):
            part, c = be.train_epoch(params, state, opt, data, y,
                                     order[s * batch_size:(s + chunk) * batch_size], batch_size,
                                     lrs[s:s + chunk], s)
            losses[s:s + len(part)] = part
            correct += c
        return losses, correct
    return run_chunked


def _step_fn(X, y, order, batch_size, sizes, dtype, lr=0.05):
    """A callable calling the protocol's ``numba_cpu.train_step`` once per batch (gathering
    the batch's rows in NumPy first), as a straight port of a NumPy loop would."""
    params, _, _ = _state(sizes, dtype)
    steps = -(-len(order) // batch_size)
    losses = np.empty(steps)

    def run():
        for s in range(steps):
            rows = order[s * batch_size:(s + 1) * batch_size]
            losses[s] = numba_cpu.train_step(params, X[rows], y[rows], lr)
        return losses, 0
    return run


def _torch_fn(X, y, order, batch_size, sizes, dtype, threads, lr=0.05):
    case = bench.Case(f"torch-{batch_size}", list(sizes), batch_size, dtype=dtype, lr=lr)
    return bench._torch_epoch(case, X, y, order, np.full(1, lr), threads)


def _threaded(fn, backend, n, blas=None):
    """`fn` run with `n` threads of its backend."""
    if backend == "numba":
        def run():
            with numba_cpu.threads(n):
                return fn()
    elif backend == "torch":
        import torch

        def run():
            torch.set_num_threads(n)
            return fn()
    elif backend == "numpy" and blas is not None:
        def run():
            with blas.limit(limits=n, user_api="blas"):
                return fn()
    else:
        return fn
    return run


def _blas_controller():
    """threadpoolctl's controller of NumPy's BLAS threads, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


# ---- timing ----------------------------------------------------------------------------------

def _finite(result):
    losses = result[0] if isinstance(result, tuple) else np.atleast_1d(result)
    return bool(np.all(np.isfinite(np.asarray(losses, dtype=np.float64))))


def time_sweep(sweep, specs, plan, n, roofs, log, notes):
    """Validate each spec (finite losses; this also compiles and warms it up), time them all
    interleaved, check their results again; returns a list of Timing."""
    kept = {}
    for spec in specs:
        result = spec.fn()
        if not _finite(result):
            notes.append(f"{spec.name}: left out, non-finite loss when checked before timing")
            continue
        kept[spec.name] = spec

    def recording(spec):
        def run():
            spec.last = spec.fn()
        return run

    log(f"  timing {len(kept)} contenders, {plan.repeats} interleaved runs each")
    times = bench.interleaved({k: recording(s) for k, s in kept.items()},
                              repeats=plan.repeats, warmup=0)
    out = []
    for name, spec in kept.items():
        if not _finite(spec.last):
            notes.append(f"{name}: left out, non-finite loss after timing")
            continue
        extra = dict(spec.extra)
        if isinstance(spec.last, tuple) and len(spec.last[0]):
            extra["last_mean_loss"] = float(np.mean(spec.last[0]))
        out.append(Timing(sweep, name, spec.backend, tuple(spec.sizes), spec.batch_size,
                          spec.dtype, spec.rows, n, times[name], roofs[spec.dtype],
                          spec.threads, extra))
    return out


def _rows(batch_size, plan, n):
    """Rows timed per call: a whole epoch, or a whole number of batches of a fraction of one."""
    if batch_size >= n:
        return n
    rows = min(n, plan.small_rows.get(batch_size, n), plan.max_rows or n)
    return n if rows >= n else max(batch_size, rows - rows % batch_size)


def _order(batch_size, rows, perm, n):
    """Full batch: rows in order (no gather, as the notebook); else a fixed permutation."""
    return np.arange(n, dtype=np.int64) if batch_size >= n else perm[:rows]


# ---- the sweeps ------------------------------------------------------------------------------

def sweep_batch_size(ctx):
    """1. Epoch time vs batch size, 784-128-10 SGD float32, all backends."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    sizes, specs = (784, 128, 10), []
    for bs in plan.batch_sizes:
        bs = min(bs, n)
        rows = _rows(bs, plan, n)
        order = _order(bs, rows, ctx["perm"], n)
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        specs.append(Spec(f"numpy b{bs}", _epoch_fn(numpy_ref, X, y, order, bs, sizes,
                                                   "float32"), "numpy", **common))
        specs.append(Spec(f"numba b{bs}", _epoch_fn(numba_cpu, ctx["csr"], y, order, bs, sizes,
                                                   "float32"), "numba", **common))
        if ctx["torch"]:
            specs.append(Spec(f"torch b{bs}", _torch_fn(X, y, order, bs, sizes, "float32",
                                                        ctx["threads"]), "torch", **common))
    return time_sweep("batch_size", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])


def sweep_threads(ctx):
    """2. 1 vs 2 (vs all) threads for numba, torch and (with threadpoolctl) NumPy's BLAS."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    counts = ctx["thread_counts"]
    if len(counts) < 2:
        ctx["notes"].append("threads: only one core is usable here, nothing to compare")
        return []
    sizes, specs = (784, 128, 10), []
    blas = _blas_controller()
    if blas is None:
        ctx["notes"].append("threads: NumPy left out (its BLAS threads need threadpoolctl)")
    for bs in plan.thread_batches:
        bs = min(bs, n)
        rows = _rows(bs, plan, n)
        order = _order(bs, rows, ctx["perm"], n)
        for t in counts:
            common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows, threads=t)
            specs.append(Spec(f"numba b{bs} {t}T", _threaded(_epoch_fn(
                numba_cpu, ctx["csr"], y, order, bs, sizes, "float32"), "numba", t),
                "numba", **common))
            if ctx["torch"]:
                specs.append(Spec(f"torch b{bs} {t}T", _threaded(_torch_fn(
                    X, y, order, bs, sizes, "float32", t), "torch", t), "torch", **common))
            if blas is not None:
                specs.append(Spec(f"numpy b{bs} {t}T", _threaded(_epoch_fn(
                    numpy_ref, X, y, order, bs, sizes, "float32"), "numpy", t, blas),
                    "numpy", **common))
    try:
        return time_sweep("threads", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])
    finally:
        if ctx["torch"]:
            import torch
            torch.set_num_threads(ctx["threads"])


def sweep_dtype(ctx):
    """3. float32 vs float64, numba and the NumPy reference."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    specs = []
    for sizes, bs in plan.dtype_cases:
        bs = min(bs, n)
        rows = _rows(bs, plan, n)
        order = _order(bs, rows, ctx["perm"], n)
        arch = "-".join(map(str, sizes))
        for dtype in ("float32", "float64"):
            common = dict(sizes=sizes, batch_size=bs, dtype=dtype, rows=rows)
            short = "f32" if dtype == "float32" else "f64"
            specs.append(Spec(f"numba {arch} b{bs} {short}", _epoch_fn(
                numba_cpu, ctx["csr"], y, order, bs, sizes, dtype), "numba", **common))
            specs.append(Spec(f"numpy {arch} b{bs} {short}", _epoch_fn(
                numpy_ref, X, y, order, bs, sizes, dtype), "numpy", **common))
    return time_sweep("dtype", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])


def sweep_python_overhead(ctx):
    """4. One compiled call per epoch vs per chunk (as fit) vs per batch; the NumPy loop."""
    from .train import CHUNK_STEPS
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    sizes, specs = (784, 128, 10), []
    for bs in plan.overhead_batches:
        rows = _rows(bs, plan, n)
        order = _order(bs, rows, ctx["perm"], n)
        steps = -(-rows // bs)
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        csr = ctx["csr"]
        specs.append(Spec(f"numba b{bs}: 1 call", _epoch_fn(
            numba_cpu, csr, y, order, bs, sizes, "float32"), "numba",
            extra=dict(variant="one call", calls=1), **common))
        if steps > CHUNK_STEPS:
            specs.append(Spec(f"numba b{bs}: 1 call / {CHUNK_STEPS} steps", _epoch_fn(
                numba_cpu, csr, y, order, bs, sizes, "float32", chunk=CHUNK_STEPS), "numba",
                extra=dict(variant=f"one call per {CHUNK_STEPS} steps (as fit)",
                           calls=-(-steps // CHUNK_STEPS)), **common))
        specs.append(Spec(f"numba b{bs}: 1 call / step", _epoch_fn(
            numba_cpu, csr, y, order, bs, sizes, "float32", chunk=1), "numba",
            extra=dict(variant="train_epoch once per step", calls=steps), **common))
        specs.append(Spec(f"numba b{bs}: train_step / step", _step_fn(
            X, y, order, bs, sizes, "float32"), "numba",
            extra=dict(variant="train_step per step (gathers rows)", calls=steps), **common))
        specs.append(Spec(f"numpy b{bs}: Python loop", _epoch_fn(
            numpy_ref, X, y, order, bs, sizes, "float32"), "numpy",
            extra=dict(variant="NumPy reference (Python loop)", calls=steps), **common))
    return time_sweep("python_overhead", specs, plan, n, ctx["roofs"], ctx["log"],
                      ctx["notes"])


def sweep_sparsity(ctx):
    """5. Layer 1 dense vs skipping zero pixels (numba), with NumPy's dense BLAS as reference."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    modes = [("CSR (skip zeros)", "csr", ctx["csr"]),
             ("dense (every pixel)", "dense", numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE))]
    if hasattr(numba_cpu, "MODE_DENSE_SKIP"):
        modes.append(("dense rows, zeros tested", "dense-skip",
                      numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE_SKIP)))
    bs, specs = 128, []
    rows = _rows(bs, plan, n)
    order = _order(bs, rows, ctx["perm"], n)
    for sizes in plan.sparsity_sizes:
        arch = "-".join(map(str, sizes))
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        for label, key, data in modes:
            specs.append(Spec(f"numba {arch} {key}", _epoch_fn(
                numba_cpu, data, y, order, bs, sizes, "float32"), "numba",
                extra=dict(mode=label, arch=arch), **common))
        specs.append(Spec(f"numpy {arch} BLAS", _epoch_fn(
            numpy_ref, X, y, order, bs, sizes, "float32"), "numpy",
            extra=dict(mode="NumPy reference (dense BLAS)", arch=arch), **common))
    timings = time_sweep("sparsity", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])
    # the one-off cost of the CSR copy
    prep = bench.interleaved({"csr": lambda: numba_cpu.prepare(X),
                              "dense": lambda: numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE)},
                             repeats=3, warmup=1)
    csr = ctx["csr"]
    ctx["sparsity"] = dict(
        nonzero_fraction=float(len(csr.values)) / (len(X) * X.shape[1]),
        prepare_csr_s=float(np.median(prep["csr"])),
        prepare_dense_s=float(np.median(prep["dense"])),
        csr_mb=csr.nbytes() / 1e6, dense_mb=X.nbytes / 1e6, n_prepared=len(X))
    return timings


def sweep_recipes(ctx):
    """7. Test accuracy vs cumulative training seconds of the named recipes (numba)."""
    from . import recipes
    X, y, Xt, yt, plan = ctx["X_all"], ctx["y_all"], ctx["X_test"], ctx["y_test"], ctx["plan"]
    out = {}
    for name in ("seed", "default", "fast98"):
        _, kw = recipes.get(name, seed=0, backend="numba")
        if plan.recipe_epochs:
            kw["epochs"] = plan.recipe_epochs[name]
        # compile and warm up on a slice, so that the first epoch is not charged compilation
        warm, wkw = recipes.get(name, seed=0, backend="numba")
        wkw.update(epochs=1)
        warm.fit(X[:1024], y[:1024], validation_data=(Xt[:256], yt[:256]), progress=False,
                 **wkw)
        model, _ = recipes.get(name, seed=0, backend="numba")
        ctx["log"](f"  recipe {name}: {model!r}, {kw['epochs']} epochs")
        t0 = time.perf_counter()
        hist = model.fit(X, y, validation_data=(Xt, yt), progress=False, **kw)
        wall = time.perf_counter() - t0
        out[name] = dict(model=repr(model), fit=dict(kw), epochs=len(hist["epoch_seconds"]),
                         epoch_seconds=list(hist["epoch_seconds"]),
                         val_accuracy=list(hist["val_accuracy"]), loss=list(hist["loss"]),
                         wall_s=wall)
    return out


# ---- machine -------------------------------------------------------------------------------

def machine_info():
    """CPU, cores, memory, load and library versions of this machine, as a dict."""
    import numba

    from . import __version__
    info = dict(summary=bench.machine(), python=platform.python_version(),
                numpy=np.__version__, numba=numba.__version__, fastmnist=__version__,
                platform=platform.platform(), logical_cpus=os.cpu_count())
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu in ("", platform.machine(), None):
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    info["cpu"] = cpu
    info["simd"] = ", ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags)
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cores"] = os.cpu_count()
    try:
        info["memory_gb"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        info["memory_gb"] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config differs across NumPy versions
        info["blas"] = "unknown"
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        import matplotlib
        info["matplotlib"] = matplotlib.__version__
    except ImportError:
        info["matplotlib"] = None
    return info


def _load():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


# ---- the study -------------------------------------------------------------------------------

def require_matplotlib():
    """Raise a clear ImportError when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastmnist study draws its plots with matplotlib: "
                          "pip install 'fastmnist[plot]'") from None


def run_study(out_dir, quick=False, data_dir=None, log=print):
    """Run every sweep, then write report.md, study.json and the PNG plots into `out_dir`.

    Returns the list of paths written.
    """
    require_matplotlib()
    from .data import load_mnist
    plan = QUICK if quick else FULL
    os.makedirs(out_dir, exist_ok=True)
    started = time.perf_counter()
    load_before = _load()
    X_all, y_all, X_test, y_test = load_mnist(data_dir)
    y_all = np.ascontiguousarray(y_all, dtype=np.int64)
    X, y = X_all, y_all
    n = len(X)
    info = machine_info()
    log(info["summary"])
    threads = numba_cpu.n_threads()
    import numba
    max_threads = min(info["usable_cores"] or 1, numba.config.NUMBA_NUM_THREADS)
    thread_counts = tuple(sorted({1, min(2, max_threads), max_threads}))
    peers = bench.available_peers()
    log("measuring the GEMM roof...")
    roofs = {"float32": bench.gemm_roof(np.float32), "float64": bench.gemm_roof(np.float64)}
    blas = _blas_controller()
    roof_1t = None
    if blas is not None:
        with blas.limit(limits=1, user_api="blas"):
            roof_1t = bench.gemm_roof(np.float32)
    ctx = dict(X=X, y=y, n=n, X_all=X_all, y_all=y_all, X_test=X_test,
               y_test=y_test.astype(np.int64), plan=plan, log=log, notes=[], roofs=roofs,
               torch="torch" in peers, threads=threads, thread_counts=thread_counts,
               perm=np.random.default_rng(0).permutation(n).astype(np.int64))
    t = time.perf_counter()
    ctx["csr"] = numba_cpu.prepare(X)
    ctx["prepare_s"] = time.perf_counter() - t
    results, seconds = {}, {}
    sweeps = (("batch_size", sweep_batch_size), ("threads", sweep_threads),
              ("dtype", sweep_dtype), ("python_overhead", sweep_python_overhead),
              ("sparsity", sweep_sparsity), ("recipes", sweep_recipes))
    for key, fn in sweeps:
        log(f"sweep {key}...")
        t = time.perf_counter()
        results[key] = fn(ctx)
        seconds[key] = time.perf_counter() - t
        log(f"  {seconds[key]:.1f} s")
    study = dict(plan=plan, info=info, roofs=roofs, roof_1t=roof_1t, peers=peers,
                 threads=threads, thread_counts=thread_counts, n=n, results=results,
                 seconds=seconds, notes=ctx["notes"], sparsity=ctx.get("sparsity", {}),
                 load=(load_before, _load()), prepare_s=ctx["prepare_s"])
    log("writing the report and plots...")
    paths = write_plots(study, out_dir)
    study["total_s"] = time.perf_counter() - started
    paths.append(write_markdown(study, out_dir))
    paths.append(write_json(study, out_dir))
    return paths


def write_json(study, out_dir):
    """All the raw numbers as study.json."""
    def enc(o):
        if isinstance(o, Timing):
            return o.as_dict()
        if isinstance(o, Plan):
            return {k: (list(v.items()) if isinstance(v, dict) else v)
                    for k, v in asdict(o).items()}
        if isinstance(o, (np.integer, np.floating)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)
    path = os.path.join(out_dir, "study.json")
    with atomic_write(path, binary=False) as f:
        json.dump(study, f, default=enc, indent=1)
    return path


# ---- numbers into words ----------------------------------------------------------------------

def _x(r):
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def compare(a_name, a_s, b_name, b_s):
    """A sentence comparing two durations: which is faster and by what factor."""
    if a_s <= 0 or b_s <= 0:
        return f"{a_name} and {b_name} could not be compared"
    r = b_s / a_s
    if 1 / SAME < r < SAME:
        return (f"{a_name} and {b_name} take about the same time ({_s(a_s)} vs {_s(b_s)}, "
                f"within {100 * (SAME - 1):.0f}%)")
    if r >= SAME:
        return f"{a_name} is {_x(r)} faster than {b_name} ({_s(a_s)} vs {_s(b_s)})"
    return f"{a_name} is {_x(1 / r)} slower than {b_name} ({_s(a_s)} vs {_s(b_s)})"


def _s(sec):
    if sec >= 100:
        return f"{sec:.0f} s"
    if sec >= 1:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{1e3 * sec:.1f} ms"
    return f"{1e6 * sec:.1f} µs"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i else ":---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _timing_row(t, first):
    star = "*" if t.fraction else ""
    return [first, t.batch_size, f"{t.rows}{star}", f"{t.epoch_s:.3f}", f"{t.images_s:,.0f}",
            f"{t.gflops:.2f}", f"{t.pct_roof:.1f}", f"{t.spread:.0f}"]


TIMING_HEADER = ["contender", "batch", "rows/call", "epoch s", "images/s", "GFLOP/s",
                 "% roof", "spread %"]


def _by(timings, **keys):
    return [t for t in timings if all(getattr(t, k) == v for k, v in keys.items())]


def _one(timings, **keys):
    found = _by(timings, **keys)
    return found[0] if found else None


# ---- sections ----------------------------------------------------------------------------------

_QUICK = "--quick (a reduced smoke-test sweep; numbers are indicative only)"


def _section_machine(study):
    info, roofs, plan = study["info"], study["roofs"], study["plan"]
    load = study["load"]
    lines = ["## Machine and settings", "",
             f"- CPU: {info['cpu']} ({info['simd'] or 'SIMD flags unknown'}), "
             f"{info['logical_cpus']} logical CPUs, {info['usable_cores']} usable by this "
             f"process" + (f", {info['memory_gb']:.0f} GB memory" if info["memory_gb"] else ""),
             f"- `fastmnist.bench.machine()`: {info['summary']}",
             f"- Versions: fastmnist {info['fastmnist']}, Python {info['python']}, "
             f"NumPy {info['numpy']} (BLAS: {info['blas']}), Numba {info['numba']}, "
             f"PyTorch {info['torch'] or 'not installed'}, "
             f"matplotlib {info['matplotlib']}",
             f"- Platform: {info['platform']}",
             f"- Threads: Numba and PyTorch use {study['threads']} unless a sweep says "
             "otherwise; NumPy's BLAS its default.",
             f"- Mode: {_QUICK if plan.quick else 'full study'}; "
             f"each timing is the median of {plan.repeats} runs interleaved round-robin with "
             "the other contenders of its sweep, after one checked run (finite losses) that "
             "also compiles and warms up.",
             "- Training step: SGD, He init, MNIST training set "
             f"({study['n']} images, uint8, scaled by 1/255 inside the kernels), unless "
             "stated.",
             "- Rows/call marked `*` time a fraction of an epoch (a whole number of batches "
             "of a fixed shuffle) and scale it to a whole epoch; small batch sizes would "
             "otherwise take minutes.",
             "- `spread %` is (slowest - fastest) / median of the timed runs: how noisy "
             "the machine was.",
             ]
    if load[0] is not None:
        lines.append(f"- Load average (1 min) at the start: {load[0][0]:.2f}, at the end: "
                     f"{load[1][0]:.2f} (other processes share these cores).")
    lines += ["", "### GEMM roof", "",
              f"The limit to measure against: NumPy's BLAS on a 1024x1024x1024 matmul, best of "
              f"7: **{roofs['float32']:.1f} GFLOP/s in float32** and "
              f"**{roofs['float64']:.1f} GFLOP/s in float64**"
              + (f" ({study['roof_1t']:.1f} GFLOP/s float32 on one thread)"
                 if study["roof_1t"] else "") + ". "
              "Achieved GFLOP/s below count the dense work of a training pass "
              "(`fastmnist.bench.train_flops`: forward, dW of every layer, dA of every layer "
              "but the first), skipped zero pixels included, so a zero-skipping kernel can show "
              "more than it computes. `% roof` is against the all-thread roof of the run's "
              "dtype.", ""]
    if study["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in study["notes"]] + [""]
    return lines


def _section_batch(study):
    ts = study["results"]["batch_size"]
    lines = ["## 1. Epoch time vs batch size", "",
             "784-128-10, float32, SGD, one epoch of the training set. "
             f"![epoch time vs batch size]({PLOTS['batch_size']})", "",
             _table(TIMING_HEADER, [_timing_row(t, t.backend) for t in ts]), ""]
    backends = [b for b in ("numpy", "numba", "torch") if _by(ts, backend=b)]
    words = []
    for b in backends:
        mine = sorted(_by(ts, backend=b), key=lambda t: t.batch_size)
        best = min(mine, key=lambda t: t.epoch_s)
        small = mine[0]
        # the smallest batch size within SAME of the best: beyond it, bigger batches buy little
        enough = next(t for t in mine if t.epoch_s <= best.epoch_s * SAME)
        s = (f"**{b}**: fastest epoch at batch {best.batch_size} ({_s(best.epoch_s)}, "
             f"{best.images_s:,.0f} images/s); batch {small.batch_size} takes "
             f"{_x(small.epoch_s / best.epoch_s)} as long ({_s(small.epoch_s)}).")
        if enough.batch_size < best.batch_size:
            s += (f" From batch {enough.batch_size} on the epoch is within "
                  f"{100 * (SAME - 1):.0f}% of the fastest: larger batches stop paying there.")
        else:
            s += " Every step up in batch size up to there still paid more than "
            s += f"{100 * (SAME - 1):.0f}%."
        words.append(s)
    if "numba" in backends:
        for other in [b for b in backends if b != "numba"]:
            ratios = []
            for t in _by(ts, backend="numba"):
                o = _one(ts, backend=other, batch_size=t.batch_size)
                if o:
                    ratios.append((o.epoch_s / t.epoch_s, t.batch_size))
            if ratios:
                hi, lo = max(ratios), min(ratios)
                words.append(f"numba vs {other}: from {_x(lo[0])} (batch {lo[1]}) to "
                             f"{_x(hi[0])} (batch {hi[1]}) "
                             + ("faster" if lo[0] >= 1 else "the speed of") + f" {other}"
                             + ("" if lo[0] >= 1 else
                                " (below 1x numba is the slower one)") + ".")
    words.append("What batch size buys: fewer, larger steps amortize per-step costs (calls, "
                 "weight updates, thread hand-offs) over more images; what it costs is "
                 "optimizer steps: an epoch at batch 128 takes "
                 f"{-(-study['n'] // 128)} updates, at batch {study['n']} one, so the "
                 "fastest epoch is rarely the fastest way to an accuracy (see section 7).")
    return lines + [f"- {w}" for w in words] + [""]


def _section_threads(study):
    ts = study["results"]["threads"]
    lines = ["## 2. Threads", ""]
    if not ts:
        return lines + ["Not measured (one usable core).", ""]
    counts = study["thread_counts"]
    top = counts[-1]
    lines += [f"784-128-10, float32, SGD; {', '.join(map(str, counts))} threads. "
              f"![threads]({PLOTS['threads']})", "",
              _table(["contender", "threads"] + TIMING_HEADER[1:],
                     [[t.backend, t.threads] + _timing_row(t, "")[1:] for t in ts]), ""]
    words = []
    for b in ("numba", "torch", "numpy"):
        speedups = []
        for bs in sorted({t.batch_size for t in _by(ts, backend=b)}):
            one, many = _one(ts, backend=b, batch_size=bs, threads=1), \
                _one(ts, backend=b, batch_size=bs, threads=top)
            if one and many:
                speedups.append((bs, one.epoch_s / many.epoch_s))
        if not speedups:
            continue
        parts = ", ".join(f"{_x(r)} at batch {bs}" for bs, r in speedups)
        paying = [bs for bs, r in speedups if r >= SAME]
        s = f"**{b}**: {top} threads vs 1: {parts}."
        if not paying:
            s += (f" At no batch size measured do {top} threads gain more than "
                  f"{100 * (SAME - 1):.0f}%: threading does not pay here.")
        elif len(paying) == len(speedups):
            s += f" Threads pay at every batch size measured (down to {speedups[0][0]})."
        else:
            s += (f" Threads pay from batch {min(paying)}; below that the hand-off between "
                  "threads costs about what the second core gains.")
        best = max(r for _, r in speedups)
        s += f" Best: {100 * best / top:.0f}% of perfect {top}-thread scaling."
        words.append(s)
    words.append("What threads buy: a share of each batch per core; the price is a "
                 "synchronization and a gradient reduction per step, fixed whatever the batch "
                 "size, so small batches gain least. On a shared machine the second core may "
                 "be busy with someone else's work.")
    return lines + [f"- {w}" for w in words] + [""]


def _section_dtype(study):
    ts = study["results"]["dtype"]
    lines = ["## 3. float32 vs float64", "",
             f"SGD, same initial weights and batches. ![float32 vs float64]({PLOTS['dtype']})",
             "",
             _table(["contender", "dtype"] + TIMING_HEADER[1:] + ["mean loss, last run"],
                    [[t.name.rsplit(" ", 1)[0], t.dtype] + _timing_row(t, "")[1:]
                     + [f"{t.extra.get('last_mean_loss', float('nan')):.4f}"] for t in ts]), ""]
    words = []
    for t32 in _by(ts, dtype="float32"):
        t64 = _one(ts, dtype="float64", backend=t32.backend, sizes=t32.sizes,
                   batch_size=t32.batch_size)
        if not t64:
            continue
        what = f"{t32.backend} {'-'.join(map(str, t32.sizes))} batch {t32.batch_size}"
        s = f"**{what}**: " + compare("float32", t32.epoch_s, "float64", t64.epoch_s) + "."
        l32, l64 = t32.extra.get("last_mean_loss"), t64.extra.get("last_mean_loss")
        if l32 is not None and l64 is not None:
            s += (f" After the same {1 + study['plan'].repeats} passes the mean training loss "
                  f"differs by {abs(l32 - l64):.2g} ({l32:.4f} vs {l64:.4f}).")
        words.append(s)
    words.append("What float32 buys: half the bytes per weight and activation, twice the "
                 "numbers per SIMD register; it pays where the arithmetic or the memory "
                 "traffic dominates and buys little where per-step overheads do.")
    return lines + [f"- {w}" for w in words] + [""]


def _section_overhead(study):
    ts = study["results"]["python_overhead"]
    lines = ["## 4. The cost of Python in the loop", "",
             "784-128-10, float32, SGD. `train_epoch` runs a whole run of steps in one compiled "
             "call; called once per batch from a Python loop it pays the call, argument "
             "checks, parameter flattening and buffer allocation every step. `train_step` is "
             "the protocol's single step (rows gathered in NumPy first). "
             f"![python overhead]({PLOTS['python_overhead']})", "",
             _table(["variant", "calls/epoch"] + TIMING_HEADER[1:],
                    [[t.extra["variant"] + f" ({t.backend})",
                      round(t.extra["calls"] * t.n / t.rows)] + _timing_row(t, "")[1:]
                     for t in ts]), ""]
    words = []
    for bs in sorted({t.batch_size for t in ts}):
        one = _one(ts, batch_size=bs, name=f"numba b{bs}: 1 call")
        if not one:
            continue
        for t in _by(ts, batch_size=bs):
            if t is one:
                continue
            calls = t.extra["calls"]
            s = f"batch {bs}: {t.extra['variant']} ({t.backend}): " + compare(
                "one compiled call per epoch", one.epoch_s, "this", t.epoch_s)
            if t.backend == "numba" and calls > 1:
                per_call = (t.median - one.median) / (calls - 1)
                step = one.median / -(-one.rows // bs)
                s += (f"; about {_s(max(per_call, 0))} extra per call, against "
                      f"{_s(step)} of work per step")
            words.append(s + ".")
    words.append("Where it stops paying: the overhead per call is fixed, so it matters in "
                 "proportion to how little work a step does. Once a call runs many steps "
                 "(as `fit` does, a chunk of steps per call) the remaining overhead is "
                 "spread over the chunk; compare the one-call and chunked rows above.")
    return lines + [f"- {w}" for w in words] + [""]


def _section_sparsity(study):
    ts = study["results"]["sparsity"]
    sp = study["sparsity"]
    lines = ["## 5. Dense vs zero-skipping layer 1", "",
             f"Batch 128, float32, SGD. ![sparsity]({PLOTS['sparsity']})", "",
             _table(["network", "layer-1 input"] + TIMING_HEADER[1:],
                    [[t.extra["arch"], t.extra["mode"]] + _timing_row(t, "")[1:] for t in ts]),
             ""]
    words = []
    if sp:
        words.append(f"{100 * sp['nonzero_fraction']:.1f}% of the training pixels are nonzero, "
                     f"so layer 1 (its forward pass and its dW) has "
                     f"{100 * (1 - sp['nonzero_fraction']):.0f}% less work when zeros are "
                     f"skipped. The CSR copy takes {_s(sp['prepare_csr_s'])} to build, once, "
                     f"and {sp['csr_mb']:.0f} MB (the uint8 images: {sp['dense_mb']:.0f} MB).")
    for arch in dict.fromkeys(t.extra["arch"] for t in ts):
        csr = _one(ts, name=f"numba {arch} csr")
        dense = _one(ts, name=f"numba {arch} dense")
        if not (csr and dense):
            continue
        s = f"**{arch}**: " + compare("skipping zeros", csr.epoch_s, "dense", dense.epoch_s)
        saved = dense.epoch_s - csr.epoch_s
        if saved > 0 and sp and csr.epoch_s * SAME < dense.epoch_s:
            s += (f"; the CSR copy pays for itself after "
                  f"{sp['prepare_csr_s'] / saved:.2g} epochs")
        blas = _one(ts, name=f"numpy {arch} BLAS")
        if blas:
            s += "; against NumPy's dense BLAS: " + compare(
                "numba (CSR)", csr.epoch_s, "NumPy", blas.epoch_s)
        words.append(s + ".")
    words.append("When it stops paying: skipping zeros saves layer-1 work only; the wider "
                 "the hidden layer, the more of an epoch is layer 1 and the more it saves, "
                 "while indirect (gathered) loads cost more per multiply than a dense, "
                 "vectorized row, so on denser inputs the dense path wins.")
    return lines + [f"- {w}" for w in words] + [""]


def _section_gflops(study):
    res = study["results"]
    every = [t for key in ("batch_size", "threads", "dtype", "python_overhead", "sparsity")
             for t in res[key]]
    lines = ["## 6. Achieved GFLOP/s and % of the GEMM roof", "",
             "Dense-equivalent training FLOPs per second of every timing above, as a "
             f"percentage of the measured roof of its dtype. ![gflops]({PLOTS['gflops']})", ""]
    if not every:
        return lines + ["Nothing was timed.", ""]
    rows = []
    for key in ("batch_size", "threads", "dtype", "python_overhead", "sparsity"):
        ts = res[key]
        if ts:
            best = max(ts, key=lambda t: t.gflops)
            worst = min(ts, key=lambda t: t.gflops)
            rows.append([key, best.name, f"{best.gflops:.2f}", f"{best.pct_roof:.1f}",
                         worst.name, f"{worst.gflops:.2f}", f"{worst.pct_roof:.1f}"])
    lines += [_table(["sweep", "best", "GFLOP/s", "% roof", "worst", "GFLOP/s", "% roof"],
                     rows), ""]
    best = max(every, key=lambda t: t.pct_roof)
    worst = min(every, key=lambda t: t.pct_roof)
    words = [f"The best run, {best.name} ({best.sweep}), reaches {best.gflops:.1f} GFLOP/s, "
             f"{best.pct_roof:.1f}% of the {best.dtype} roof; the worst, {worst.name}, "
             f"{worst.gflops:.2f} GFLOP/s ({worst.pct_roof:.2f}%)."]
    if best.pct_roof < 50:
        words.append("Even the best stays below half the roof: these networks are small "
                     "(a 784x128 layer-1 matmul per batch), so memory traffic, per-step "
                     "updates and synchronization, not arithmetic, set the pace.")
    else:
        words.append("The best run comes within a factor of two of the roof: there the "
                     "arithmetic, not overheads, sets the pace.")
    return lines + [f"- {w}" for w in words] + [""]


def _section_recipes(study):
    rec = study["results"]["recipes"]
    plan = study["plan"]
    lines = ["## 7. Test accuracy vs training time", "",
             "Each recipe (`fastmnist.recipes.get(name)`) trained once with the numba backend "
             "after a warm-up fit on a slice (so no compilation is charged); test accuracy "
             "after every epoch; training seconds exclude the evaluation. "
             f"![accuracy vs time]({PLOTS['accuracy']})", ""]
    if plan.quick:
        lines += ["`--quick` cuts the epochs (" + ", ".join(
            f"{k}: {v}" for k, v in plan.recipe_epochs.items()) + "): the accuracies are "
            "not the recipes' own.", ""]
    rows = []
    for name, r in rec.items():
        cum = np.cumsum(r["epoch_seconds"])
        acc = np.asarray(r["val_accuracy"])
        hit = np.flatnonzero(acc >= 0.98)
        rows.append([name, r["model"].replace("|", "/"), r["epochs"], f"{cum[-1]:.2f}",
                     f"{r['wall_s']:.2f}", f"{100 * acc[-1]:.2f}", f"{100 * acc.max():.2f}",
                     f"{cum[hit[0]]:.2f} (epoch {hit[0] + 1})" if len(hit) else "never"])
    lines += [_table(["recipe", "model", "epochs", "training s", "wall s (with eval)",
                      "final test %", "best test %", "s to 98%"], rows), ""]
    words = []
    reach = {name: float(np.cumsum(r["epoch_seconds"])[np.argmax(np.asarray(
        r["val_accuracy"]) >= 0.98)]) for name, r in rec.items()
        if max(r["val_accuracy"]) >= 0.98}
    if reach:
        first = min(reach, key=reach.get)
        words.append(f"First to 98% test accuracy: **{first}** after {_s(reach[first])} of "
                     "training.")
    else:
        words.append("No recipe reached 98% test accuracy in this run.")
    if "seed" in rec and len(rec) > 1:
        seed_acc = rec["seed"]["val_accuracy"][-1]
        seed_s = sum(rec["seed"]["epoch_seconds"])
        for name, r in rec.items():
            if name == "seed":
                continue
            acc, sec = r["val_accuracy"][-1], sum(r["epoch_seconds"])
            words.append(f"{name} vs seed: {100 * acc:.2f}% vs {100 * seed_acc:.2f}% test "
                         f"accuracy in {_s(sec)} vs {_s(seed_s)} of training ("
                         + (f"{_x(seed_s / sec)} less time" if sec < seed_s
                            else f"{_x(sec / seed_s)} more time") + ").")
    words.append("What this shows: the time to an accuracy depends on the recipe (network "
                 "width, optimizer, schedule, batch size) as much as on the kernels; a fast "
                 "epoch of full-batch gradient descent does one update where batch 128 does "
                 "hundreds.")
    return lines + [f"- {w}" for w in words] + [""]


def write_markdown(study, out_dir):
    """report.md: machine, settings, roof, and per sweep a table plus derived sentences."""
    plan = study["plan"]
    lines = ["# fastmnist trade-off study", "",
             "What each optimization of fastmnist buys and when it stops paying, measured on "
             "this machine by `fastmnist study" + (" --quick" if plan.quick else "") + "` in "
             f"{study['total_s']:.0f} s (" + ", ".join(
                 f"{k} {v:.0f} s" for k, v in study["seconds"].items()) + "). "
             "Numbers on a shared machine are indicative; ratios measured within one sweep "
             "are the robust part.", ""]
    for section in (_section_machine, _section_batch, _section_threads, _section_dtype,
                    _section_overhead, _section_sparsity, _section_gflops, _section_recipes):
        lines += section(study)
    lines += ["## Files", "", "- `study.json`: every timing (all runs, not only medians) and "
              "the recipes' histories."] + [f"- `{p}`" for p in PLOTS.values()] + [""]
    path = os.path.join(out_dir, "report.md")
    with atomic_write(path, binary=False) as f:
        f.write("\n".join(lines))
    return path


# ---- plots -------------------------------------------------------------------------------------

COLORS = {"numpy": "tab:blue", "numba": "tab:orange", "torch": "tab:green"}


def write_plots(study, out_dir):
    """Every PNG of the study; returns their paths."""
    out = []
    for key, fn in (("batch_size", _plot_batch), ("threads", _plot_threads),
                    ("dtype", _plot_dtype), ("python_overhead", _plot_overhead),
                    ("sparsity", _plot_sparsity), ("gflops", _plot_gflops),
                    ("accuracy", _plot_recipes)):
        path = os.path.join(out_dir, PLOTS[key])
        fn(study, path)
        out.append(path)
    return out


def _figure(w, h):
    from .plots import _figure as figure
    return figure(w, h)


def _save(fig, path):
    from .plots import _save as save
    return save(fig, path)


def _empty(ax, text):
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, transform=ax.transAxes)


def _plot_batch(study, path):
    ts = study["results"]["batch_size"]
    roof = study["roofs"]["float32"]
    fig = _figure(11.0, 4.6)
    fig.suptitle("Epoch time and throughput vs batch size (784-128-10, float32, SGD)")
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for b in ("numpy", "numba", "torch"):
        mine = sorted(_by(ts, backend=b), key=lambda t: t.batch_size)
        if not mine:
            continue
        bss = [t.batch_size for t in mine]
        ax1.plot(bss, [t.epoch_s for t in mine], "o-", color=COLORS[b], label=b)
        ax2.plot(bss, [t.gflops for t in mine], "o-", color=COLORS[b], label=b)
        for t in mine:
            if t.fraction:
                ax1.plot([t.batch_size], [t.epoch_s], "o", mfc="white", color=COLORS[b])
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (images per step, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax1.set_ylabel("seconds per epoch (log scale)")
    ax1.set_title("Epoch time (hollow: scaled from part of an epoch)", fontsize=10)
    ax2.set_ylabel("achieved GFLOP/s, dense-equivalent (log scale)")
    ax2.set_title(f"Throughput; right axis: % of the {roof:.0f} GFLOP/s GEMM roof", fontsize=10)
    sec = ax2.secondary_yaxis("right", functions=(lambda g: 100 * g / roof,
                                                  lambda p: p * roof / 100))
    sec.set_ylabel("% of float32 GEMM roof")
    return _save(fig, path)


def _plot_threads(study, path):
    ts = study["results"]["threads"]
    fig = _figure(11.0, 4.6)
    fig.suptitle("Threads: epoch time and speedup (784-128-10, float32, SGD)")
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if not ts:
        _empty(ax1, "one usable core: not measured")
        _empty(ax2, "")
        return _save(fig, path)
    counts = study["thread_counts"]
    top = counts[-1]
    styles = {1: ":", top: "-"}
    for b in ("numpy", "numba", "torch"):
        for c in counts:
            mine = sorted(_by(ts, backend=b, threads=c), key=lambda t: t.batch_size)
            if mine:
                ax1.plot([t.batch_size for t in mine], [t.epoch_s for t in mine], "o",
                         ls=styles.get(c, "--"), color=COLORS[b], label=f"{b}, {c} thread"
                         + ("s" if c > 1 else ""))
        speed = []
        for bs in sorted({t.batch_size for t in _by(ts, backend=b)}):
            one = _one(ts, backend=b, batch_size=bs, threads=1)
            many = _one(ts, backend=b, batch_size=bs, threads=top)
            if one and many:
                speed.append((bs, one.epoch_s / many.epoch_s))
        if speed:
            ax2.plot(*zip(*speed), "o-", color=COLORS[b], label=b)
    ax2.axhline(1.0, color="gray", lw=1, ls="--", label="no gain")
    ax2.axhline(float(top), color="black", lw=1, ls=":", label=f"perfect ({top}x)")
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds per epoch (log scale)")
    ax1.set_title("Epoch time", fontsize=10)
    ax2.set_ylabel(f"speedup, 1 thread time / {top} threads time (x)")
    ax2.set_title(f"Speedup of {top} threads over 1", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("batch size (images per step, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _bars(ax, groups, series, values, colors=None, fmt="{:.2f}", log=False):
    """Grouped bars: values[(group, series)] -> height; missing pairs are skipped."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, s in enumerate(series):
        hs = [values.get((g, s), np.nan) for g in groups]
        bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, hs, width, label=s,
                      color=(colors or {}).get(s))
        ax.bar_label(bars, labels=["" if np.isnan(h) else fmt.format(h) for h in hs],
                     fontsize=7, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _plot_dtype(study, path):
    ts = study["results"]["dtype"]
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(
        f"{t.backend}\n{'-'.join(map(str, t.sizes))}, batch {t.batch_size}" for t in ts))
    values = {(f"{t.backend}\n{'-'.join(map(str, t.sizes))}, batch {t.batch_size}", t.dtype):
              t.epoch_s for t in ts}
    _bars(ax, groups, ["float32", "float64"], values,
          {"float32": "tab:orange", "float64": "tab:purple"}, fmt="{:.3f} s")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("float32 vs float64: epoch time (SGD; lower is better)")
    return _save(fig, path)


def _plot_overhead(study, path):
    ts = study["results"]["python_overhead"]
    fig = _figure(10.0, 5.0)
    ax = fig.add_subplot()
    groups = [f"batch {bs}" for bs in sorted({t.batch_size for t in ts})]
    series = list(dict.fromkeys(f"{t.extra['variant']} ({t.backend})" for t in ts))
    values = {(f"batch {t.batch_size}", f"{t.extra['variant']} ({t.backend})"): t.epoch_s
              for t in ts}
    palette = ["tab:orange", "gold", "tab:red", "tab:brown", "tab:blue"]
    _bars(ax, groups, series, values, dict(zip(series, palette)), fmt="{:.2f}", log=True)
    ax.set_ylabel("seconds per epoch (log scale)")
    ax.set_title("The cost of Python in the loop (784-128-10, float32, SGD; lower is better)")
    return _save(fig, path)


def _plot_sparsity(study, path):
    ts = study["results"]["sparsity"]
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(t.extra["arch"] for t in ts))
    series = list(dict.fromkeys(t.extra["mode"] for t in ts))
    values = {(t.extra["arch"], t.extra["mode"]): t.epoch_s for t in ts}
    palette = ["tab:orange", "tab:gray", "tab:olive", "tab:blue"]
    _bars(ax, groups, series, values, dict(zip(series, palette)), fmt="{:.3f} s")
    ax.set_ylabel("seconds per epoch")
    ax.set_xlabel("network")
    ax.set_title("Layer 1: skipping zero pixels vs dense (batch 128, float32; lower is better)")
    return _save(fig, path)


def _plot_gflops(study, path):
    res = study["results"]
    keys = [k for k in ("batch_size", "threads", "dtype", "python_overhead", "sparsity")
            if res[k]]
    titles = {"batch_size": "1. batch size", "threads": "2. threads", "dtype": "3. dtype",
              "python_overhead": "4. Python in the loop", "sparsity": "5. layer-1 sparsity"}
    n_bars = sum(len(res[k]) for k in keys)
    fig = _figure(11.0, max(4.0, 1.2 + 0.19 * n_bars + 0.5 * len(keys)))
    fig.suptitle("Achieved GFLOP/s (dense-equivalent) of every timed configuration; "
                 "labels: % of the GEMM roof")
    if not keys:
        _empty(fig.add_subplot(), "nothing timed")
        return _save(fig, path)
    grid = fig.add_gridspec(len(keys), 1, height_ratios=[len(res[k]) + 1.5 for k in keys])
    top = max(t.gflops for k in keys for t in res[k])
    for i, k in enumerate(keys):
        ax = fig.add_subplot(grid[i])
        ts = res[k]
        y = np.arange(len(ts))
        bars = ax.barh(y, [t.gflops for t in ts], color=[COLORS[t.backend] for t in ts])
        ax.bar_label(bars, labels=[f"{t.pct_roof:.1f}%" for t in ts], fontsize=7, padding=2)
        ax.set_yticks(y)
        ax.set_yticklabels([t.name + (f" {t.dtype}" if k == "dtype" else "") for t in ts],
                           fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.18)
        ax.set_title(titles[k], fontsize=9, loc="left")
        ax.grid(True, axis="x", alpha=0.3)
        if i == len(keys) - 1:
            ax.set_xlabel("achieved GFLOP/s (dense-equivalent training FLOPs / second)")
    return _save(fig, path)


def _plot_recipes(study, path):
    rec = study["results"]["recipes"]
    fig = _figure(11.0, 4.6)
    fig.suptitle("Test accuracy vs training time of the recipes (numba backend)")
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = {"seed": "tab:blue", "default": "tab:orange", "fast98": "tab:green"}
    hi = 0.0
    for name, r in rec.items():
        cum = np.cumsum(r["epoch_seconds"])
        acc = 100 * np.asarray(r["val_accuracy"])
        hi = max(hi, float(acc.max()))
        marker = "o" if len(cum) <= 30 else None
        for ax in (ax1, ax2):
            ax.plot(cum, acc, marker=marker, ms=4, color=colors.get(name), label=name)
    for ax in (ax1, ax2):
        ax.axhline(98.0, color="gray", lw=1, ls="--", label="98%")
        ax.set_xscale("log")
        ax.set_xlabel("cumulative training seconds (log scale; evaluation excluded)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    ax1.set_title("Whole run", fontsize=10)
    ax1.set_ylim(0, 100)
    lo = max(0.0, min(95.0, hi - 3.0))
    ax2.set_ylim(lo, max(hi + 0.5, 98.5))
    ax2.set_title(f"Zoom: {lo:.0f}% and up", fontsize=10)
    return _save(fig, path)
