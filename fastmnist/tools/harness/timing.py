"""Timing contenders fairly on a shared machine: interleaved medians, a pause before each run.

Speed claims are ratios measured in one run: the contenders are interleaved round-robin
(a, b, c, a, b, c, ...) and each one's median is taken, so that a noisy, shared machine slows
them all alike.
"""

import json
import platform
import subprocess
import sys
import time

import numpy as np


def cpu_model():
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ...") where the OS tells it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

#: seconds to wait before each timed run: OpenBLAS's worker threads keep spinning for about
#: 2^28 cycles (~0.1 s) after a call, and would otherwise take the cores from the next contender
#: (measured: a Numba 784-10-10 epoch run right after a NumPy one took 2.1x as long)
SETTLE = 0.25


def interleaved(contenders, repeats=5, warmup=1, settle=SETTLE):
    """Time each callable `repeats` times, round-robin; returns name -> list of seconds.

    Every contender runs `warmup` times first (compilation, caches), also round-robin. Each
    timed run starts after `settle` seconds of idleness, so that it finds the cores free of
    the previous contender's spinning threads, as it would when run on its own. The order
    reverses every other round (A B, B A, A B, ...), so that no contender always runs first
    or always follows the same one. A callable that returns ``(seconds, ...)`` with a float
    first reports its own time (a ``fit`` that times itself per epoch); otherwise the call is
    timed from outside.
    """
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    order = list(contenders.items())
    for r in range(repeats):
        for name, fn in order[::-1] if r % 2 else order:
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            out = fn()
            took = time.perf_counter() - t0
            if isinstance(out, tuple) and out and isinstance(out[0], float):
                took = out[0]
            times[name].append(took)
    return times


def in_own_process(args, label):
    """A contender for :func:`interleaved` that runs ``python *args`` in a process of its own
    (its threads cannot spin on the next contender's cores) and reports the process's own
    timing: the last line of its output, JSON ``{"seconds": ..., "accuracy": ...}``. Each run
    prints `label`, the seconds and the accuracy; returns (seconds, accuracy)."""
    def run():
        out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                             check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label} {res['seconds']:6.2f} s  test accuracy {res['accuracy']:.4f}",
              flush=True)
        return res["seconds"], res["accuracy"]
    return run


def timed(fn):
    """(fn(), seconds it took)."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def gemm_roof(dtype=np.float32, n=1024, repeats=7):
    """This machine's measured GEMM roof in GFLOP/s: NumPy's BLAS on an n x n matmul, best of."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b
    best = min(timed(lambda: a @ b)[1] for _ in range(repeats))
    return 2.0 * n ** 3 / best / 1e9


def train_flops(sizes, n_rows):
    """Dense FLOPs of one training pass over n_rows: forward, dW of every layer, and dA of
    every layer but the first (whose input needs no gradient). Skipped zeros still count,
    so a zero-skipping kernel shows as a higher effective rate."""
    mats = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * n_rows * (2 * sum(mats) + sum(mats[1:]))


def sparse_train_flops(sizes, n_rows, nnz):
    """FLOPs of the same pass with layer 1's forward and dW over the `nnz` nonzero inputs
    only: the work a zero-skipping kernel does, to set against the GEMM roof."""
    mats = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * (2 * nnz * sizes[1] + n_rows * 3 * sum(mats[1:]))
