"""fastmnist head to head with each contender of :mod:`fastmnist.tools.harness` on the same work,
timed side by side (``fastmnist bench``).

fastmnist is timed as users call it, through ``fit`` (a new model, its preparation included;
seconds per epoch of a multi-epoch fit) and, to show the kernels alone, through the Numba
backend's ``train_epoch`` on data prepared once. Its contenders: plain NumPy as a user writes
it (float data scaled once, outside the timer), the NumPy reference backend, the seed
notebook's own code for the full-batch case, and PyTorch and JAX when installed. Every
contender is checked against the NumPy reference before it is timed (its first optimizer
steps from the same weights), then all are timed interleaved with a pause before each run
(:func:`fastmnist.tools.harness.timing.interleaved`), and ratios are taken between medians.

The Numba backend is imported where a case runs, not here: every ``fastmnist`` command
builds its parser from this module's cases, and importing the kernels costs a first run
about a second (their self-test compiles).
"""

import platform
from dataclasses import dataclass

import numpy as np

from ..backends import numpy_ref
from ..model import MLP, init_params
from ..optim import Optimizer
from .harness import checks, epochs, timing
from .harness.timing import gemm_roof, interleaved, sparse_train_flops, train_flops

__all__ = ["CASES", "Case", "available_peers", "gemm_roof", "interleaved", "machine", "report",
           "run_case", "train_flops"]


@dataclass(frozen=True)
class Case:
    """One workload: a network, a batch size (None: full batch), a dtype, an optimizer, the
    inputs ("pixels": the uint8 images; "standardized": dense float features), and the
    contenders timed on it."""

    name: str
    sizes: tuple
    batch_size: int = epochs.BATCH
    dtype: str = "float32"
    lr: float = 0.05
    optimizer: str = "sgd"
    init: str = "he"
    inputs: str = "pixels"
    contenders: tuple = ("fit", "epoch", "numpy", "reference", "torch", "jax")
    fit_epochs: int = 3


CASES = {c.name: c for c in (
    Case("epoch-784-10-10", (784, 10, 10)),
    Case("epoch-784-128-10", (784, 128, 10)),
    # the notebook's recipe: one full-batch iteration of 784-10-10, U(-0.5, 0.5), lr 0.2
    Case("seed-iteration", (784, 10, 10), None, "float64", 0.2, init="uniform",
         contenders=("fit-f32", "fit-f64", "epoch-f32", "epoch-f64", "notebook", "reference"),
         fit_epochs=20),
    # dense features: standardized pixels, Adam
    Case("dense-784-128-10", (784, 128, 10), lr=1e-3, optimizer="adam", inputs="standardized",
         contenders=("fit", "epoch", "numpy", "reference", "torch")),
)}


def available_peers():
    """Names of the optional peers that can be imported ("torch", "jax")."""
    import importlib.util
    return [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]


def standardized(X):
    """X (n, d) uint8 as dense float32 features: each pixel centred and scaled to unit
    variance over the rows (constant pixels left at 0)."""
    Xf = X.astype(np.float32) / np.float32(255)
    sd = Xf.std(axis=0)
    return (Xf - Xf.mean(axis=0)) / np.where(sd > 0, sd, 1)


def _dtype_of(name, case):
    return {"f32": "float32", "f64": "float64"}.get(name.rpartition("-")[2], case.dtype)


def _contender(name, case, start, opt, X, y, order, lrs, batch, threads):
    """The Epoch of contender `name` on a copy of `start` (None: not available here)."""
    from ..backends import numba_cpu
    params = epochs.copy_params(start)
    kind = name.partition("-")[0]
    if kind == "epoch":
        return epochs.fastmnist_epoch(numba_cpu, params, opt, numba_cpu.prepare(X), y, order,
                                      lrs, batch)
    if kind == "reference":
        return epochs.fastmnist_epoch(numpy_ref, params, opt, X, y, order, lrs, batch)
    if kind == "numpy":
        return epochs.numpy_user_epoch(params, opt, epochs.user_data(X, start[0][0].dtype), y,
                                       order, lrs, batch)
    if kind == "notebook":
        X_cols = np.asarray(X[order].T / 255.0)  # (784, m) float64, as the notebook holds it
        return epochs.notebook_iteration(X_cols, y[order], lrs[0], params)
    if kind in available_peers():
        from .harness import peers
        if kind == "torch":
            return peers.torch_epoch(params, peers.torch_data(X, y), order, case.lr,
                                     case.optimizer, batch_size=batch, threads=threads)
        if case.optimizer == "sgd":
            return peers.jax_epoch(params, peers.jax_data(X, y), order, case.lr, batch)
    return None


def _fit_contender(name, case, X, y, batch, threads):
    """A callable timing `fit` per epoch, after checking that a short fit on the Numba
    backend ends where the same fit on the NumPy reference does."""
    dtype = _dtype_of(name, case)
    pixels = case.inputs == "pixels"

    def make():
        return MLP(hidden=case.sizes[1:-1], dtype=dtype, init=case.init, seed=0,
                   n_features=case.sizes[0], n_classes=case.sizes[-1], pixels=pixels)
    kw = dict(batch_size=batch, lr=case.lr, optimizer=case.optimizer, schedule=None,
              shuffle=batch is not None, threads=threads)
    rows = slice(0, checks.PARITY_STEPS * (batch or 512))
    got, want = make(), make()
    got.fit(X[rows], y[rows], epochs=1 if batch else checks.PARITY_STEPS, progress=False, **kw)
    want.fit(X[rows], y[rows], epochs=1 if batch else checks.PARITY_STEPS, progress=False,
             backend="numpy", **{k: v for k, v in kw.items() if k != "threads"})
    steps = checks.PARITY_STEPS
    atol = checks.adam_atol(dtype, [case.lr] * steps) if case.optimizer == "adam" else None
    checks.check_params_close(name, got.params, want.params, dtype, atol)
    return epochs.fit_run(make, X, y, dict(kw, epochs=case.fit_epochs))


def run_case(case, X, y, repeats=5, threads=None, log=print):
    """Validate, then time, every contender of `case` available here on X (n, 784) uint8.

    Returns name -> list of seconds (per epoch, or per iteration for full batch).
    """
    from ..backends import numba_cpu
    if case.inputs == "standardized":
        X = standardized(X)
    y = np.ascontiguousarray(y, dtype=np.int64)
    n = len(X)
    batch = case.batch_size
    full = batch is None or batch >= n
    order = (np.arange(n) if full else np.random.default_rng(0).permutation(n)).astype(np.int64)
    steps = 1 if full else -(-n // batch)
    step_rows = n if full else batch
    lrs = np.full(steps, case.lr)
    threads = threads or numba_cpu.n_threads()
    contenders = {}
    for name in case.contenders:
        if name.startswith("fit"):
            contenders[name] = _fit_contender(name, case, X, y, None if full else batch,
                                              threads)
            continue
        dtype = np.dtype(_dtype_of(name, case))
        start = init_params(list(case.sizes), dtype, case.init, np.random.default_rng(0))
        opt = Optimizer(case.optimizer)
        epoch = _contender(name, case, start, opt, X, y, order, lrs, step_rows, threads)
        if epoch is None:
            continue
        if name != "notebook":  # the notebook's own math (scalar bias gradients) differs
            checks.check_first_steps(
                name, lambda p, o, l, name=name, start=start, opt=opt: _contender(
                    name, case, start, opt, X, y, o, l, step_rows, threads),
                start, opt, X, y, order, lrs, steps=min(checks.PARITY_STEPS, steps),
                batch_size=step_rows)
        contenders[name] = epoch.run
    for name, fn in contenders.items():  # warm up (compile) and check the timed work once
        out = fn()
        losses = out if not isinstance(out, tuple) else out[1].history["loss"]
        if not np.all(np.isfinite(losses)):
            raise RuntimeError(f"{name}: non-finite loss while checking before timing")
    with numba_cpu.threads(threads):
        return interleaved(contenders, repeats=repeats, warmup=0)


def report(times_by_case, roof):
    """A text table per case: median seconds, how many times faster ``fit`` (or ``fit-f32``)
    is than each contender, and the sparse work per second as a percentage of the GEMM roof."""
    lines = []
    for case_name, (case, n, nnz, times) in times_by_case.items():
        ours = "fit" if "fit" in times else "fit-f32"
        base = float(np.median(times[ours])) if ours in times else None
        rows = n if case.batch_size is None else n
        flops = (sparse_train_flops(case.sizes, rows, nnz) if case.inputs == "pixels"
                 else train_flops(case.sizes, rows))
        lines.append(f"{case_name}: {'-'.join(map(str, case.sizes))}, {case.optimizer}, "
                     f"batch {case.batch_size or 'full'}, {case.dtype}, {case.inputs}")
        lines.append(f"  {'contender':<11} {'median s':>9} {ours + ' faster':>11} "
                     f"{'GFLOP/s':>8} {'% roof':>7}")
        for name, ts in times.items():
            med = float(np.median(ts))
            ratio = f"{med / base:10.2f}x" if base else "          -"
            gflops = flops / med / 1e9
            lines.append(f"  {name:<11} {med:9.4f} {ratio:>11} {gflops:8.1f} "
                         f"{100 * gflops / roof:6.1f}%")
    return "\n".join(lines)


def machine():
    """One line about this machine and the versions that matter."""
    import numba

    from ..backends import kernels, numba_cpu
    gather = ("" if not kernels.PACKED else ", nonzeros gathered by "
              + ("vpcompressb" if kernels.COMPRESS else "pshufb"))
    return (f"{timing.cpu_model()}, {numba_cpu.n_threads()} threads, "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"Numba {numba.__version__}, kernels: "
            f"{'vector intrinsics' if numba_cpu.INTRINSICS else 'plain loops'} "
            f"(INTRINSICS={numba_cpu.INTRINSICS})"
            f"{gather}")
