"""Cold and warm start of the Numba backend, each in a fresh process.

    python benchmarks/start_time.py [--rounds 3] [--what step|train|both|cold]
                                    [--busy] [--against REV]

``train``: the wall time of the whole ``fastmnist train`` (default recipe, real MNIST from
$FASTMNIST_DATA or the cache), measured from outside the process: cold (an empty Numba cache:
it trains with NumPy while a subprocess compiles, ``--compile auto``), cold with
``--compile wait`` (it compiles first, as before ``fastmnist.warmup``), and warm (the cache
filled; ``fastmnist compile`` waits for the background compiler before it, untimed).

``cold``: the cold ``fastmnist train`` alone, its background compiler stopped after each
run (its pid from the lock file in the cache), so rounds take seconds, not minutes; with
``--against REV``, alternated with that git revision's package (a worktree in a temporary
folder), medians of each. ``--busy``: the ``cold`` runs with a busy-looping neighbour process
on a core (``fastmnist.busy.busy_neighbour``), a busy desktop's first run.

``step``, timed in the child process: ``import fastmnist`` plus the first training step of a
784-128-10 float32 network (Adam, one batch of 128 random uint8 images as sparse as MNIST's,
so that it takes MNIST's path), which compiles the
kernels or loads them from Numba's cache. Cold: an empty cache folder (``NUMBA_CACHE_DIR`` set
to a new temporary folder), as on a machine's first run; warm: the same folder again, filled by
the cold run. Process start-up and Python's own import time come on top (about 0.1 s here).
"""

import argparse
import contextlib
import glob
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = """
import time
t0 = time.perf_counter()
import numpy as np
import fastmnist
from fastmnist.backends import numba_cpu
from fastmnist.model import init_params
from fastmnist.optim import Optimizer, init_state
t1 = time.perf_counter()
rng = np.random.default_rng(0)
# MNIST's sparsity (19% of pixels lit): the sparse path MNIST takes, not the BLAS path that
# dense random pixels would (its few small kernels compile in 5 s, the sparse ones in 30-60)
x = (rng.integers(1, 256, (128, 784)) * (rng.random((128, 784)) < 0.19)).astype(np.uint8)
y = rng.integers(0, 10, 128)
params = init_params([784, 128, 10], np.dtype("float32"), "he", rng)
opt = Optimizer("adam")
losses, _ = numba_cpu.train_epoch(params, init_state(params, opt), opt, numba_cpu.prepare(x), y,
                                  np.arange(128), 128, np.array([0.01]), 0)
assert np.isfinite(losses).all()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def _run(cache=None):
    """(import seconds, first-step seconds) of one child process; cache: the Numba cache
    folder (None: the environment's)."""
    env = dict(os.environ) if cache is None else dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, check=True)
    imp, step = (float(v) for v in out.stdout.split())
    return imp, step


def _train(cache, *extra, root=None):
    """Wall seconds of ``fastmnist train --no-progress`` with the Numba cache in `cache` (and
    the package from folder `root`, if given)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env.pop("FASTMNIST_COMPILE", None)
    if root is not None:
        env["PYTHONPATH"] = root
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fastmnist.cli", "train", "--no-progress", *extra],
                   env=env, capture_output=True, text=True, check=True,
                   cwd=root or os.getcwd())
    return time.perf_counter() - t0


def _stop_compiler(cache):
    """Kill the background compiler a cold run left for `cache` (pid in its lock file)."""
    from fastmnist.warmup import lock_pid
    for lock in glob.glob(os.path.join(cache, "**", "fastmnist-warm-*.lock"), recursive=True):
        pid = lock_pid(lock)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)


def cold_times(rounds, busy=False, against=None):
    """Medians of the cold ``fastmnist train`` (working tree, and REV `against` if given),
    alternated, each with an empty cache; with `busy`, beside a busy-looping neighbour."""
    from fastmnist.busy import busy_neighbour
    roots = {"working tree": None}
    with contextlib.ExitStack() as stack:
        if against:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="fastmnist-rev-"))
            subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", folder, against],
                           check=True, capture_output=True)
            stack.callback(subprocess.run, ["git", "-C", ROOT, "worktree", "remove", "--force",
                                            folder], capture_output=True)
            roots[against] = folder
        if busy:
            stack.enter_context(busy_neighbour())
        times = {name: [] for name in roots}
        for r in range(rounds):
            for name, root in (list(roots.items())[::-1] if r % 2 else roots.items()):
                with tempfile.TemporaryDirectory(prefix="fastmnist-start-") as cache:
                    try:
                        times[name].append(_train(cache, root=root))
                    finally:
                        _stop_compiler(cache)
                print(f"round {r + 1}: {name} cold {times[name][-1]:.2f} s", flush=True)
    print(f"median cold fastmnist train{' beside a busy neighbour' if busy else ''}: " + ", ".join(
        f"{name} {statistics.median(v):.2f} s" for name, v in times.items()))


def _settle(cache):
    """Wait for a background compiler of `cache` to finish (``fastmnist compile``)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    subprocess.run([sys.executable, "-m", "fastmnist.cli", "compile", "--dtype", "float32"],
                   env=env, capture_output=True, text=True, check=True)


def train_times(rounds):
    """Medians of the whole `fastmnist train`'s wall time: cold, cold waiting, warm."""
    times = {"cold": [], "cold --compile wait": [], "warm": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="fastmnist-start-") as cache:
            times["cold"].append(_train(cache))
            _settle(cache)
            times["warm"].append(_train(cache))
        with tempfile.TemporaryDirectory(prefix="fastmnist-start-") as cache:
            times["cold --compile wait"].append(_train(cache, "--compile", "wait"))
        print(f"round {r + 1}: fastmnist train " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    print("median: fastmnist train " + ", ".join(
        f"{k} {statistics.median(v):.2f} s" for k, v in times.items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="cold/warm pairs (default 3)")
    ap.add_argument("--what", choices=("step", "train", "both", "cold"), default="both",
                    help="first step in a child, whole fastmnist train, both, or the cold "
                         "fastmnist train alone")
    ap.add_argument("--busy", action="store_true",
                    help="cold: beside a busy-looping neighbour process")
    ap.add_argument("--against", metavar="REV", help="cold: alternate with this git revision")
    args = ap.parse_args(argv)
    if args.what == "cold":
        cold_times(args.rounds, args.busy, args.against)
        return
    if args.what in ("train", "both"):
        train_times(args.rounds)
    if args.what == "train":
        return
    cold, warm = [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="fastmnist-start-") as cache:
            for kind, times in (("cold", cold), ("warm", warm)):
                imp, step = _run(cache)
                times.append(imp + step)
                print(f"round {r + 1}: {kind}  import {imp:.2f} s + first step {step:.2f} s "
                      f"= {imp + step:.2f} s", flush=True)
    print(f"median: cold {statistics.median(cold):.2f} s, warm {statistics.median(warm):.2f} s")


if __name__ == "__main__":
    main()
