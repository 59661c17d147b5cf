"""What every contender passes before it is timed (llm.c's "All results match. Starting
benchmarks."): its first optimizer steps against the NumPy reference from the same weights,
then its timed work itself, whose losses must be finite and go down. Nothing of the checking
is inside a timed call.
"""

import numpy as np

from ...backends import numpy_ref
from .epochs import BATCH, copy_params, fastmnist_epoch

#: one kernel call, backends against each other (the same values as tests/tolerances.py)
RTOL_F64, ATOL_F64 = 1e-10, 1e-12
RTOL_F32, ATOL_F32 = 1e-4, 1e-6
#: weights after PARITY_STEPS optimizer steps, contender against the NumPy reference
STEPS_RTOL_F64, STEPS_ATOL_F64 = 1e-9, 1e-12
STEPS_RTOL_F32, STEPS_ATOL_F32 = 1e-4, 1e-6
#: optimizer steps compared with the reference before an epoch is timed
PARITY_STEPS = 4
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


def reference_steps(params, opt, X, y, order, lrs, steps=PARITY_STEPS, batch_size=BATCH):
    """(losses, params) of the NumPy reference after the first `steps` steps of an epoch."""
    params = copy_params(params)
    rows = order[:steps * batch_size]
    epoch = fastmnist_epoch(numpy_ref, params, opt, X, y, rows, lrs[:steps], batch_size)
    return epoch.run(), params


def adam_atol(dtype, lrs):
    """The absolute tolerance of weights after Adam steps at learning rates `lrs`.

    Adam moves each weight by about lr * m / sqrt(v) whatever the size of its gradient, so a
    gradient that float32 rounding leaves at 1e-9 instead of 0 moves its weight by a fraction
    of lr: 1% of lr a step allows that (seen: 0.7% of lr after 4 steps on standardized
    features, 1 weight of 100k) and still catches a wrong moment or bias correction, which
    moves most weights by a good part of lr.
    """
    if np.dtype(dtype) == np.float64:
        return STEPS_ATOL_F64
    return max(STEPS_ATOL_F32, 0.01 * float(np.sum(np.abs(lrs))))


def check_params_close(name, got, want, dtype, atol=None):
    """Every W and b of `got` close to `want` within steps_tol(dtype) (or that rtol and
    `atol`)."""
    rtol, default_atol = steps_tol(dtype)
    atol = default_atol if atol is None else atol
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


def accuracy(params, X_test, y_test):
    """Test accuracy of the weights, by the NumPy reference's forward pass."""
    return float(np.mean(np.argmax(numpy_ref.forward(params, X_test), axis=1) == y_test))


def check_accuracy(name, params, X_test, y_test, minimum=MIN_ACCURACY):
    """The trained weights classify the test set better than `minimum`; returns the accuracy."""
    acc = accuracy(params, X_test, y_test)
    assert acc > minimum, f"{name}: test accuracy {acc:.4f} after one epoch"
    return acc


def check_first_steps(name, make_epoch, start, opt, X, y, order, lrs, steps=PARITY_STEPS,
                      batch_size=BATCH):
    """The contender's first `steps` steps from the weights `start` match the reference's.

    ``make_epoch(params, order, lrs)`` builds the contender's Epoch on a copy of `start`;
    X, y: the reference's data (uint8 images or float features).
    """
    losses0, want = reference_steps(start, opt, X, y, order, lrs, steps, batch_size)
    epoch = make_epoch(copy_params(start), order[:steps * batch_size], lrs[:steps])
    dtype = start[0][0].dtype
    losses = epoch.run()
    if len(losses):
        check_losses_close(name, losses, losses0, dtype)
    atol = adam_atol(dtype, lrs[:steps]) if opt.name == "adam" else None
    check_params_close(name, epoch.params(), want, dtype, atol)
