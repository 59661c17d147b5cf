"""Two threads against one, interleaved in one process (issue: two cores, used), and what the
host gives two copies of the same work that never wait for each other.

    python benchmarks/threads.py [--repeats 7] [--no-pair]

Workloads: one shuffled SGD epoch of 784-128-10 (batches of 128) through the Numba backend's
``train_epoch`` on data prepared once, and the ``fast98`` recipe's whole ``fit``; each with 1
and with 2 threads (Numba's thread count fixed for the call), all timed round-robin with a
pause before each run (:func:`fastmnist.tools.harness.timing.interleaved`). Prints the medians and
how many times faster 2 threads are. Needs MNIST in $FASTMNIST_DATA or the cache.

The pair: two worker processes, each holding its own copy of a workload on one thread, run it
at the same moment ("pair"), or one of them runs it alone ("alone"), in the same round-robin.
``2 * alone / pair`` is the throughput the host gives two copies of this very work that share
nothing and never wait: its two vCPUs' real rate for these kernels, caches and memory
included (on a guest whose vCPUs are hyperthreads, or whose host is busy, it is well under
2). It is a yardstick, not a bound: the split by units keeps half of ``W1`` per core, where
each copy here keeps all of it, so the split can beat it.
"""

import argparse
import contextlib
import functools
import multiprocessing as mp
import statistics
import time

import numpy as np


@functools.cache
def _mnist():
    """(X, y, X's CSR) loaded once per process: every contender trains on the same array, so
    that a ``fit`` reuses its CSR as a user's second fit would."""
    import fastmnist as fm
    from fastmnist.backends import numba_cpu

    X, y, _, _ = fm.load_mnist(download=False)
    return X, y.astype(np.int64), numba_cpu.prepare(X)


def _workload(name, threads):
    """A callable that runs workload `name` ("epoch" or "fast98") on `threads` threads once."""
    import fastmnist as fm
    from fastmnist.backends import numba_cpu
    from fastmnist.model import init_params
    from fastmnist.optim import Optimizer
    from fastmnist.tools.harness import epochs

    X, y, prepared = _mnist()
    if name == "epoch":
        order = np.random.default_rng(0).permutation(len(X)).astype(np.int64)
        lrs = np.full(-(-len(X) // 128), 0.05)
        params = init_params([784, 128, 10], np.dtype("float32"), "he",
                             np.random.default_rng(0))
        e = epochs.fastmnist_epoch(numba_cpu, params, Optimizer("sgd"), prepared, y, order,
                                   lrs)

        def run():
            with numba_cpu.threads(threads):
                t0 = time.perf_counter()
                e.run()
                return time.perf_counter() - t0
        return run

    def run():
        model, kw = fm.recipes.get("fast98")
        t0 = time.perf_counter()
        model.fit(X, y, progress=False, **dict(kw, threads=threads))
        return time.perf_counter() - t0
    return run


def _worker(name, conn):
    """A process that holds one copy of workload `name` on one thread and runs it each time
    it is told to ("go"), answering its seconds, until told "stop"."""
    try:
        run = _workload(name, 1)
    except Exception as e:  # tell the parent, which would otherwise wait for "ready"
        conn.send(f"{type(e).__name__}: {e}")
        return
    conn.send("ready")
    while conn.recv() == "go":
        conn.send(run())


class Pair:
    """Two :func:`_worker` processes of one workload; :meth:`pair` runs both at once,
    :meth:`alone` the first by itself. Each returns (seconds,): the pair's wall time is the
    slower copy's."""

    def __init__(self, name):
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(2):
            a, b = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(name, b), daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)
        for c in self.conns:
            said = c.recv()
            if said != "ready":
                self.close()
                raise RuntimeError(f"a {name} worker failed: {said}")

    def pair(self):
        for c in self.conns:
            c.send("go")
        return (max(c.recv() for c in self.conns),)

    def alone(self):
        self.conns[0].send("go")
        return (self.conns[0].recv(),)

    def close(self):
        for c, p in zip(self.conns, self.procs):
            with contextlib.suppress(OSError):  # a worker that has ended has closed its end
                c.send("stop")
            p.join(timeout=10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-pair", action="store_true",
                    help="skip the two worker processes' yardstick")
    args = ap.parse_args(argv)

    from fastmnist.tools.harness.timing import cpu_model, interleaved

    names = ("epoch", "fast98")
    contenders = {}
    for w in names:
        contenders[w + " 1T"] = _workload(w, 1)
        contenders[w + " 2T"] = _workload(w, 2)
    pairs = {} if args.no_pair else {w: Pair(w) for w in names}
    for w, p in pairs.items():
        contenders[w + " alone"] = p.alone
        contenders[w + " pair"] = p.pair
    try:
        times = interleaved(contenders, repeats=args.repeats, warmup=1)
    finally:
        for p in pairs.values():
            p.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(cpu_model())
    for k, v in med.items():
        print(f"{k:12s} median {v:.4f} s")
    for w in names:
        line = f"{w}: 2 threads {med[w + ' 1T'] / med[w + ' 2T']:.2f}x faster than 1"
        if w in pairs:
            host = 2 * med[w + " alone"] / med[w + " pair"]
            line += f"; two copies at once on one thread each: {host:.2f}x the throughput of one"
        print(line)


if __name__ == "__main__":
    main()
