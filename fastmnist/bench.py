"""Side-by-side timing of the backends (and PyTorch, when installed) on the same work.

Speed claims are ratios measured in one run: the contenders are interleaved round-robin
(numpy, numba, torch, numpy, numba, torch, ...) and each one's median is taken, so that a
noisy, shared machine slows them all alike. Each contender's result is checked before it
is timed.
"""

import platform
import time
from dataclasses import dataclass, field

import numpy as np

from .backends import numba_cpu, numpy_ref
from .model import init_params
from .optim import Optimizer, init_state

#: seconds to wait before each timed run: OpenBLAS's worker threads keep spinning for about
#: 2^28 cycles (~0.1 s) after a call, and would otherwise take the cores from the next contender
#: (measured: a Numba 784-10-10 epoch run right after a NumPy one took 2.1x as long)
SETTLE = 0.25


def interleaved(contenders, repeats=5, warmup=1, settle=SETTLE):
    """Time each callable `repeats` times, round-robin; returns name -> list of seconds.

    Every contender runs `warmup` times first (compilation, caches), also round-robin. Each
    timed run starts after `settle` seconds of idleness, so that it finds the cores free of
    the previous contender's spinning threads, as it would when run on its own.
    """
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def gemm_roof(dtype=np.float32, n=1024, repeats=7):
    """This machine's measured GEMM roof in GFLOP/s: NumPy's BLAS on an n x n matmul, best of."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def train_flops(sizes, n_rows):
    """Dense FLOPs of one training pass over n_rows: forward, dW of every layer, and dA of
    every layer but the first (whose input needs no gradient). Skipped zeros still count,
    so a zero-skipping kernel shows as a higher effective rate."""
    mats = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * n_rows * (2 * sum(mats) + sum(mats[1:]))


@dataclass
class Case:
    """One benchmark case: a network, a batch size, a dtype, the optimizer steps of an epoch."""

    name: str
    sizes: list
    batch_size: int
    dtype: str = "float32"
    lr: float = 0.05
    optimizer: str = "sgd"
    init: str = "he"
    contenders: tuple = ("numpy", "numba", "torch")
    notes: dict = field(default_factory=dict)


CASES = {
    "epoch-784-10-10": Case("epoch-784-10-10", [784, 10, 10], 128),
    "epoch-784-128-10": Case("epoch-784-128-10", [784, 128, 10], 128),
    # the notebook's full-batch iteration: NumPy reference in float64 as the notebook,
    # Numba in float64 and float32
    "seed-iteration": Case("seed-iteration", [784, 10, 10], 60000, dtype="float64", lr=0.2,
                           init="uniform", contenders=("numpy", "numba-f64", "numba-f32")),
}


def _numpy_epoch(case, X, y, order, lrs):
    dtype = np.dtype(case.dtype)
    params = init_params(case.sizes, dtype, case.init, np.random.default_rng(0))
    opt = Optimizer(case.optimizer)
    state = init_state(params, opt)
    # full batch: the notebook keeps a scaled float copy; mini-batch: uint8, as fit does
    data = numpy_ref.as_float(X, dtype) if case.batch_size >= len(X) else X

    def run():
        return numpy_ref.train_epoch(params, state, opt, data, y, order, case.batch_size,
                                     lrs, 0)
    return run


def _numba_epoch(case, prepared, y, order, lrs, dtype=None):
    dtype = np.dtype(dtype or case.dtype)
    params = init_params(case.sizes, dtype, case.init, np.random.default_rng(0))
    opt = Optimizer(case.optimizer)
    state = init_state(params, opt)

    def run():
        return numba_cpu.train_epoch(params, state, opt, prepared, y, order, case.batch_size,
                                     lrs, 0)
    return run


def _torch_epoch(case, X, y, order, lrs, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = torch.float32 if case.dtype == "float32" else torch.float64
    layers = []
    for i, (a, b) in enumerate(zip(case.sizes[:-1], case.sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(case.sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=case.lr)
    Xt = torch.from_numpy(X).to(dtype) / 255.0  # converted once, as a torch user would
    yt = torch.from_numpy(y)
    idx = torch.from_numpy(order)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = case.batch_size

    def run():
        total = 0.0
        for s in range(0, len(idx), bs):
            rows = idx[s:s + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[rows]), yt[rows])
            loss.backward()
            opt.step()
            total += loss.item()
        return total
    return run


def _check_losses(name, result):
    losses = result[0] if isinstance(result, tuple) else np.atleast_1d(result)
    if not np.all(np.isfinite(losses)):
        raise RuntimeError(f"{name}: non-finite loss while checking before timing")


def available_peers():
    """Names of the optional peers that can be imported ("torch")."""
    peers = []
    try:
        import torch  # noqa: F401
        peers.append("torch")
    except ImportError:
        pass
    return peers


def run_case(case, X, y, repeats=5, threads=None, log=print):
    """Time one case; returns a dict of name -> seconds list plus metadata."""
    n = len(X)
    y = np.ascontiguousarray(y, dtype=np.int64)
    order = (np.arange(n) if case.batch_size >= n
             else np.random.default_rng(0).permutation(n)).astype(np.int64)
    steps = -(-n // case.batch_size)
    lrs = np.full(steps, case.lr)
    threads = threads or numba_cpu.n_threads()
    prepared = numba_cpu.prepare(X)
    contenders = {}
    for name in case.contenders:
        if name == "numpy":
            contenders[name] = _numpy_epoch(case, X, y, order, lrs)
        elif name.startswith("numba"):
            dtype = {"numba-f64": "float64", "numba-f32": "float32"}.get(name)
            contenders[name] = _numba_epoch(case, prepared, y, order, lrs, dtype)
        elif name == "torch" and "torch" in available_peers():
            contenders[name] = _torch_epoch(case, X, y, order, lrs, threads)
    for name, fn in contenders.items():  # compile, warm up and validate before timing
        _check_losses(name, fn())
    with numba_cpu.threads(threads):
        times = interleaved(contenders, repeats=repeats, warmup=0)
    return times


def report(times_by_case, roof, reference="numpy"):
    """A text table: median seconds, ratio to `reference`, effective GFLOP/s, % of roof."""
    lines = [f"{'case':<18} {'contender':<10} {'median s':>9} {'vs ' + reference:>9} "
             f"{'GFLOP/s':>8} {'% roof':>7}"]
    for case_name, (case, n, times) in times_by_case.items():
        ref = np.median(times[reference]) if reference in times else None
        flops = train_flops(case.sizes, n)
        for name, ts in times.items():
            med = float(np.median(ts))
            ratio = f"{ref / med:8.2f}x" if ref else "        -"
            gflops = flops / med / 1e9
            lines.append(f"{case_name:<18} {name:<10} {med:9.4f} {ratio:>9} {gflops:8.1f} "
                         f"{100 * gflops / roof:6.1f}%")
    return "\n".join(lines)


def machine():
    """One line about this machine and the versions that matter."""
    import numba
    return (f"{platform.processor() or platform.machine()}, {numba_cpu.n_threads()} threads, "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"Numba {numba.__version__}, kernels: "
            f"{'vector intrinsics' if numba_cpu.INTRINSICS else 'plain loops'} "
            f"(INTRINSICS={numba_cpu.INTRINSICS})")
