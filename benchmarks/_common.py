"""What the benchmarks share besides :mod:`fastmnist.tools.harness` (whose contenders, tolerances
and checks they use, as ``fastmnist bench`` and ``fastmnist study`` do): pytest-benchmark's
rounds, smoke mode, networks and row orders.

Every benchmark validates before it times (llm.c's "All results match. Starting benchmarks."):
a few optimizer steps against the NumPy reference from the same initial weights, then one
call of the timed work itself (which also compiles and warms it up) whose result is checked.
Nothing of the checking is inside the timed function.
"""

import math

import numpy as np

from fastmnist.model import init_params
from fastmnist.optim import Optimizer
from fastmnist.tools.harness.checks import (  # noqa: F401  (re-exported to the benchmark files)
    PARITY_STEPS,
    check_accuracy,
    check_first_steps,
    check_losses_close,
    check_params_close,
    check_training,
    reference_steps,
    steps_tol,
    tol,
)
from fastmnist.tools.harness.epochs import BATCH, Epoch, copy_params, fastmnist_epoch  # noqa: F401
from fastmnist.tools.harness.timing import timed  # noqa: F401

#: rows of an "epoch" under --benchmark-disable (a smoke test runs each body once, fast)
SMOKE_ROWS = 2048


# ---- timing ---------------------------------------------------------------------------------

def rounds_for(benchmark, seconds):
    """Rounds that fill ``--benchmark-max-time`` at `seconds` a call, at least
    ``--benchmark-min-rounds`` (pytest-benchmark's own settings, 1 s and 5 by default)."""
    max_time = getattr(benchmark, "_max_time", 1.0)
    min_rounds = getattr(benchmark, "_min_rounds", 5)
    return int(max(min_rounds, math.ceil(max_time / max(seconds, 1e-9))))


def pedantic(benchmark, fn, seconds, setup=None):
    """Time `fn` (already warmed up: its first call took `seconds`), one call a round."""
    return benchmark.pedantic(fn, setup=setup, rounds=rounds_for(benchmark, seconds),
                              iterations=1, warmup_rounds=0)


def smoke(benchmark):
    """True under --benchmark-disable: the body runs once, on a subset where that is cheaper."""
    return bool(getattr(benchmark, "disabled", False))


# ---- networks and epochs --------------------------------------------------------------------

def arch(sizes):
    """'784-128-10' for [784, 128, 10]."""
    return "-".join(map(str, sizes))


def net(sizes, dtype="float32", init="he", seed=0):
    """Initial parameters [(W, b), ...], the same for every contender of a benchmark."""
    return init_params(sizes, np.dtype(dtype), init, np.random.default_rng(seed))


def epoch_order(benchmark, n, seed=0):
    """Row order of the timed epoch: a permutation of all n rows (SMOKE_ROWS in smoke mode)."""
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return order[:SMOKE_ROWS] if smoke(benchmark) else order


def n_steps(n_rows, batch_size=BATCH):
    return -(-n_rows // batch_size)


# ---- checks ---------------------------------------------------------------------------------

def validate_epoch(name, epoch, steps, benchmark, mnist):
    """Compile/warm up with one timed-work call, check it; returns its seconds."""
    losses, seconds = timed(epoch.run)
    check_training(name, losses, steps)
    if not smoke(benchmark):
        benchmark.extra_info["test_accuracy_after_first_epoch"] = check_accuracy(
            name, epoch.params(), mnist.X_test, mnist.y_test)
    return seconds


def sgd():
    return Optimizer("sgd")


