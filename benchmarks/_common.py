"""What the benchmarks share: tolerances, round counts, epoch contenders and their checks.

Every benchmark validates before it times (llm.c's "All results match. Starting benchmarks."):
a few optimizer steps against the NumPy reference from the same initial weights, then one
call of the timed work itself (which also compiles and warms it up) whose result is checked.
Nothing of the checking is inside the timed function.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastmnist.backends import numpy_ref
from fastmnist.model import init_params
from fastmnist.optim import Optimizer, init_state

#: one kernel call, backends against each other (the same values as tests/tolerances.py)
RTOL_F64, ATOL_F64 = 1e-10, 1e-12
RTOL_F32, ATOL_F32 = 1e-4, 1e-6
#: weights after PARITY_STEPS optimizer steps, contender against the NumPy reference
STEPS_RTOL_F64, STEPS_ATOL_F64 = 1e-9, 1e-12
STEPS_RTOL_F32, STEPS_ATOL_F32 = 1e-4, 1e-6

#: mini-batch rows
BATCH = 128
#: optimizer steps compared with the reference before an epoch is timed
PARITY_STEPS = 4
#: rows of an "epoch" under --benchmark-disable (a smoke test runs each body once, fast)
SMOKE_ROWS = 2048
#: an epoch must leave the test accuracy above this (full epochs only)
MIN_ACCURACY = 0.85


def tol(dtype):
    """(rtol, atol) for one kernel call in `dtype`."""
    return (RTOL_F64, ATOL_F64) if np.dtype(dtype) == np.float64 else (RTOL_F32, ATOL_F32)


def steps_tol(dtype):
    """(rtol, atol) for weights after a few optimizer steps in `dtype`."""
    if np.dtype(dtype) == np.float64:
        return STEPS_RTOL_F64, STEPS_ATOL_F64
    return STEPS_RTOL_F32, STEPS_ATOL_F32


# ---- timing ---------------------------------------------------------------------------------

def timed(fn):
    """(fn(), seconds it took)."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


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


def copy_params(params):
    return [(W.copy(), b.copy()) for W, b in params]


def epoch_order(benchmark, n, seed=0):
    """Row order of the timed epoch: a permutation of all n rows (SMOKE_ROWS in smoke mode)."""
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return order[:SMOKE_ROWS] if smoke(benchmark) else order


def n_steps(n_rows, batch_size=BATCH):
    return -(-n_rows // batch_size)


@dataclass
class Epoch:
    """A contender: ``run()`` trains one epoch in place and returns the loss of every step;
    ``params()`` gives the current weights as NumPy [(W (d_in, d_out), b (d_out,)), ...]."""

    run: Callable[[], np.ndarray]
    params: Callable[[], list]


def fastmnist_epoch(be, params, opt, data, y, order, lrs, batch_size=BATCH):
    """An Epoch of backend `be` (``backends.numpy_ref`` or ``backends.numba_cpu``).

    `data` is ``be.prepare(X)``, done once outside; every call trains one more epoch with
    the same `order` and learning rates `lrs` (n_steps,), the optimizer state carried on.
    """
    state = init_state(params, opt)
    t = [0]

    def run():
        losses, _ = be.train_epoch(params, state, opt, data, y, order, batch_size, lrs, t[0])
        t[0] += len(losses)
        return losses
    return Epoch(run, lambda: params)


def reference_steps(params, opt, X, y, order, lrs, steps=PARITY_STEPS, batch_size=BATCH):
    """(losses, params) of the NumPy reference after the first `steps` steps of an epoch."""
    params = copy_params(params)
    rows = order[:steps * batch_size]
    epoch = fastmnist_epoch(numpy_ref, params, opt, X, y, rows, lrs[:steps], batch_size)
    return epoch.run(), params


# ---- checks ---------------------------------------------------------------------------------

def check_params_close(name, got, want, dtype):
    """Every W and b of `got` close to `want` within steps_tol(dtype)."""
    rtol, atol = steps_tol(dtype)
    for i, ((W, b), (W0, b0)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(W, W0, rtol=rtol, atol=atol, err_msg=f"{name}: W{i}")
        np.testing.assert_allclose(b, b0, rtol=rtol, atol=atol, err_msg=f"{name}: b{i}")


def check_losses_close(name, got, want, dtype):
    rtol = steps_tol(dtype)[0]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol,
                               err_msg=f"{name}: losses of the first steps")


def check_training(name, losses, steps):
    """An epoch ran all its steps, every loss finite, and the loss went down."""
    losses = np.asarray(losses, dtype=np.float64)
    assert losses.shape == (steps,), f"{name}: {losses.shape[0]} of {steps} steps ran"
    assert np.all(np.isfinite(losses)), f"{name}: non-finite loss"
    q = max(steps // 4, 1)
    first, last = losses[:q].mean(), losses[-q:].mean()
    assert last < first, f"{name}: loss did not go down ({first:.4f} -> {last:.4f})"


def check_accuracy(name, params, X_test, y_test, minimum=MIN_ACCURACY):
    """The trained weights classify the test set better than `minimum` (NumPy forward)."""
    acc = float(np.mean(np.argmax(numpy_ref.forward(params, X_test), axis=1) == y_test))
    assert acc > minimum, f"{name}: test accuracy {acc:.4f} after one epoch"
    return acc


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


def check_first_steps(name, make_epoch, start, opt, mnist, order, lrs, steps=PARITY_STEPS,
                      batch_size=BATCH):
    """The contender's first `steps` steps from the weights `start` match the reference's.

    ``make_epoch(params, order, lrs)`` builds the contender's Epoch on a copy of `start`.
    """
    losses0, want = reference_steps(start, opt, mnist.X, mnist.y, order, lrs, steps, batch_size)
    epoch = make_epoch(copy_params(start), order[:steps * batch_size], lrs[:steps])
    dtype = start[0][0].dtype
    check_losses_close(name, epoch.run(), losses0, dtype)
    check_params_close(name, epoch.params(), want, dtype)
