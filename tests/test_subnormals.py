"""No subnormal floats, by construction: the update sweep stores any value below the dtype's
smallest normal number as 0, in weights and optimizer state, in both backends.

Subnormals cost Intel cores a microcode assist of about 100 cycles per operation: before the
flush, fast98 left 14,413 of W1's 200,704 Adam first moments subnormal, and its epochs slowed
from 0.62 to 1.02 s on an Intel Xeon. Each run below would leave thousands without it.
"""

import numpy as np
import pytest
from conftest import learnable

import fastmnist as fm
from fastmnist.backends import numba_cpu, numpy_ref


def _subnormal_count(arrays):
    count = 0
    for a in arrays:
        tiny = np.finfo(a.dtype).tiny
        count += int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
    return count


def _touched(model, states):
    """Every array the training kept: the parameters and each optimizer state buffer."""
    arrays = [a for pair in model.params for a in pair]
    for state in states:
        arrays += [a for slot in state for pair in slot for a in pair]
    return arrays


@pytest.fixture
def record_state(monkeypatch):
    """The optimizer state that fit hands to the backends' train_epoch, recorded."""
    seen = []
    for be in (numba_cpu, numpy_ref):
        original = be.train_epoch

        def spy(params, state, *args, _original=original):
            seen.append(state)
            return _original(params, state, *args)

        monkeypatch.setattr(be, "train_epoch", spy)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fast98", "default"])
def test_recipes_leave_no_subnormals(mnist, record_state, recipe):
    X, y, _, _ = mnist
    model, kw = fm.recipes.get(recipe, seed=0)
    model.fit(X, y, progress=False, **kw)
    arrays = _touched(model, record_state[-1:])
    assert len(arrays) == 2 * len(model.params) * 3  # weights, Adam's two moments
    assert _subnormal_count(arrays) == 0


def _rarely_lit(n):
    """n images whose pixels 700.. are lit in the first 4 rows only: after those, their
    gradient is exactly 0, so Adam's first moment decays by beta1 each step."""
    X, y = learnable(n, seed=3)
    X[:, :] = np.where(np.arange(784) < 700, X, 0)
    X[:4, 700:] = 255
    return X, y


@pytest.mark.parametrize("backend", ["numba", "numpy"])
# step counts that are not multiples of 8: the last flush is some steps before the end
@pytest.mark.parametrize("dtype,steps", [("float32", 1003), ("float64", 6805)])
def test_long_adam_run_leaves_no_subnormals(record_state, backend, dtype, steps):
    """0.9^t takes a moment of 1e-3 below float32's smallest normal after ~800 steps and below
    float64's after ~6700: stopping inside that window catches any that were stored."""
    X, y = _rarely_lit(steps)
    model = fm.MLP(hidden=(8,), dtype=dtype, seed=0)
    model.fit(X, y, epochs=1, batch_size=1, lr=1e-3, optimizer="adam", shuffle=False,
              backend=backend, progress=False, threads=1 if backend == "numba" else None)
    arrays = _touched(model, record_state[-1:])
    assert _subnormal_count(arrays) == 0


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_tiny_gradients_leave_no_subnormal_second_moment(record_state, backend):
    """A confident model's gradients can be so small that Adam's (1 - beta2) * g * g is
    subnormal within one step, where the state's flush (every FLUSH_EVERY steps) does not
    look: here the true class leads the others by 43.7 in the logits, so that b2's and W2's
    gradients are about exp(-43.7) = 1e-19 and their squares, times 1 - beta2, about 1e-41.
    Adam takes them as 0 (``optim.grad_flush_threshold``): one step (not a flush step)
    stores no subnormal. float32 only: the softmax's flush at exp(-64) keeps float64's
    gradients far above its threshold (5e-153)."""
    dtype, gap = "float32", 43.7
    model = fm.MLP(hidden=(8,), dtype=dtype, seed=0)
    (W1, b1), (W2, b2) = model.params
    W2[:] = 0.5 / 8
    b2[:] = 0
    b2[3] = gap
    X = np.zeros((1, 784), np.uint8)
    X[0, 300:340] = 200
    y = np.array([3])
    assert fm.optim.grad_flush_threshold(fm.optim.Optimizer("adam"), dtype) > np.exp(-gap)
    model.fit(X, y, epochs=1, batch_size=1, lr=1e-3, optimizer="adam", shuffle=False,
              backend=backend, progress=False, threads=1 if backend == "numba" else None)
    arrays = _touched(model, record_state[-1:])
    assert _subnormal_count(arrays) == 0


def test_flush_keeps_nan_and_normals():
    opt = fm.optim.Optimizer("adam")
    thr = fm.optim.flush_threshold(opt, np.float32)
    assert np.finfo(np.float32).tiny < thr < 1e-30
    W = np.array([np.nan, np.inf, -1e-40, thr / 2, -thr * 2, 0.0, 3.0], dtype=np.float32)
    state = [[(np.array([1e-39, 1.0], np.float32), W[:0].copy())]]
    fm.optim.flush_small([(W, W[:0].copy())], [state[0]], opt)
    np.testing.assert_array_equal(W, np.array([np.nan, np.inf, 0, 0, -thr * 2, 0, 3.0],
                                              dtype=np.float32))
    np.testing.assert_array_equal(state[0][0][0], [0, 1])
