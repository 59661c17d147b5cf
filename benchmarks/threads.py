"""Two threads against one, interleaved in one process (issue: two cores, used).

    python benchmarks/threads.py [--repeats 7]

Workloads: one shuffled SGD epoch of 784-128-10 (batches of 128) through the Numba backend's
``train_epoch`` on data prepared once, and the ``fast98`` recipe's whole ``fit``; each with 1
and with 2 threads (Numba's thread count fixed for the call), all four timed round-robin with a
pause before each run (:func:`fastmnist.tools.harness.timing.interleaved`). Prints the medians and
how many times faster 2 threads are. Needs MNIST in $FASTMNIST_DATA or the cache.
"""

import argparse
import statistics
import time

import numpy as np


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
                  "fast98 2T": fast98(2)}
    times = interleaved(contenders, repeats=args.repeats, warmup=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:10s} median {v:.4f} s")
    for w in ("epoch", "fast98"):
        print(f"{w}: 2 threads {med[w + ' 1T'] / med[w + ' 2T']:.2f}x faster than 1")


if __name__ == "__main__":
    main()
