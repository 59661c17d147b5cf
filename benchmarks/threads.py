"""Two threads against one, interleaved in one process (issue: two cores, used).

    python benchmarks/threads.py [--repeats 7]

Workloads: one shuffled SGD epoch of 784-128-10 (batches of 128) through the Numba backend's
``train_epoch`` on data prepared once, and the ``fast98`` recipe's whole ``fit``; each with 1
and with 2 threads (Numba's thread count fixed for the call), all four timed round-robin with a
pause before each run (:func:`fastmnist.tools.harness.timing.interleaved`). Prints the medians and
how many times faster 2 threads are.

Also, as a yardstick of what the machine gives a second thread at that moment: ``host``, a
vector multiply-add loop over an array that stays in L1, no memory traffic and no barrier,
run by 1 thread and, with as much work each, by 2 (its speed-up is 2 x the 1-thread time over
the 2-thread time). On a virtual machine whose two vCPUs land on one physical core's two
hardware threads, or whose host clocks down when both run, it falls well below 2 (1.32x to
1.84x from one run to the next on a 2-vCPU AMD EPYC); a training step, which also waits on
memory, is hit less and may scale better than it. Needs MNIST in $FASTMNIST_DATA or the
cache.
"""

import argparse
import statistics
import time

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def _host_work(k, reps, a, b):
    """k threads (a prange of k), each `reps` passes of a[t] = a[t] * 0.999 + b[t] over its
    own row of 2048 floats (8 KB: stays in L1)."""
    for t in numba.prange(k):
        x, y = a[t], b[t]
        for _ in range(reps):
            for i in range(x.shape[0]):
                x[i] = x[i] * np.float32(0.999) + y[i]


def _host(k, reps=500_000):
    """The yardstick on k threads (about 40 ms)."""
    from fastmnist.backends import numba_cpu

    a = np.ones((2, 2048), np.float32)
    b = np.full((2, 2048), 1e-3, np.float32)

    def run():
        with numba_cpu.threads(k):
            _host_work(k, reps, a, b)
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    import fastmnist as fm
    from fastmnist.backends import numba_cpu
    from fastmnist.model import init_params
    from fastmnist.optim import Optimizer
    from fastmnist.tools.harness import epochs
    from fastmnist.tools.harness.timing import interleaved

    X, y, _, _ = fm.load_mnist(download=False)
    y = y.astype(np.int64)
    prepared = numba_cpu.prepare(X)
    order = np.random.default_rng(0).permutation(len(X)).astype(np.int64)
    lrs = np.full(-(-len(X) // 128), 0.05)

    def epoch(threads):
        params = init_params([784, 128, 10], np.dtype("float32"), "he",
                             np.random.default_rng(0))
        e = epochs.fastmnist_epoch(numba_cpu, params, Optimizer("sgd"), prepared, y, order, lrs)

        def run():
            with numba_cpu.threads(threads):
                return e.run()
        return run

    def fast98(threads):
        def run():
            model, kw = fm.recipes.get("fast98")
            t0 = time.perf_counter()
            model.fit(X, y, progress=False, **dict(kw, threads=threads))
            return time.perf_counter() - t0, model
        return run

    contenders = {"epoch 1T": epoch(1), "epoch 2T": epoch(2), "fast98 1T": fast98(1),
                  "fast98 2T": fast98(2), "host 1T": _host(1), "host 2T": _host(2)}
    times = interleaved(contenders, repeats=args.repeats, warmup=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:10s} median {v:.4f} s")
    host = 2 * med["host 1T"] / med["host 2T"]
    print(f"host: 2 threads do {host:.2f}x the work of 1 (an L1-resident multiply-add loop)")
    for w in ("epoch", "fast98"):
        speed_up = med[w + " 1T"] / med[w + " 2T"]
        print(f"{w}: 2 threads {speed_up:.2f}x faster than 1 ({speed_up / host:.0%} of the "
              f"host's)")


if __name__ == "__main__":
    main()
