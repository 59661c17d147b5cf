"""loss_and_grads against central differences, on tiny float64 nets of several depths."""

import numpy as np
import pytest
from conftest import random_net, random_pixels
from tolerances import GRAD_RTOL

from fastmnist.backends import numba_cpu, numpy_ref

EPS = 1e-5


def numeric_grads(be, params, x, y):
    """Central differences of the loss w.r.t. every parameter entry."""
    out = []
    for W, b in params:
        pair = []
        for p in (W, b):
            g = np.zeros_like(p)
            for i in np.ndindex(p.shape):
                old = p[i]
                p[i] = old + EPS
                up = be.loss_and_grads(params, x, y)[0]
                p[i] = old - EPS
                down = be.loss_and_grads(params, x, y)[0]
                p[i] = old
                g[i] = (up - down) / (2 * EPS)
            pair.append(g)
        out.append(pair)
    return out


def assert_close_to_numeric(grads, numeric):
    """Every analytic gradient array within GRAD_RTOL of its central differences, relative to
    the array's largest entry (ReLU kinks aside)."""
    for (dW, db), (nW, nb) in zip(grads, numeric):
        for analytic, num in ((dW, nW), (db, nb)):
            err = np.abs(analytic - num).max() / max(np.abs(num).max(), 1e-8)
            assert err < GRAD_RTOL, err


@pytest.mark.parametrize("be", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("sizes", [[6, 3], [6, 5, 4], [7, 5, 4, 3], [5, 4, 4, 4, 3]])
def test_gradients_match_central_differences(be, sizes):
    params = random_net(sizes, np.float64, seed=len(sizes))
    x = random_pixels(5, sizes[0], seed=1, density=0.7)
    y = np.array([0, 1, 2, 0, 1]) % sizes[-1]
    _, grads = be.loss_and_grads(params, x, y)
    numeric = numeric_grads(be, params, x, y)
    assert_close_to_numeric(grads, numeric)


def test_gradients_of_float_inputs():
    params = random_net([4, 3, 2], np.float64)
    x = np.random.default_rng(0).random((3, 4))
    y = np.array([0, 1, 1])
    _, grads = numpy_ref.loss_and_grads(params, x, y)
    numeric = numeric_grads(numpy_ref, params, x, y)
    for (dW, db), (nW, nb) in zip(grads, numeric):
        np.testing.assert_allclose(dW, nW, rtol=GRAD_RTOL, atol=1e-9)
        np.testing.assert_allclose(db, nb, rtol=GRAD_RTOL, atol=1e-9)


@pytest.mark.parametrize("be", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
@pytest.mark.parametrize("sizes", [[6, 5, 4], [7, 5, 4, 3], [6, 20, 3]])
def test_gradients_of_other_activations(be, activation, sizes):
    """Smooth activations: analytic gradients match central differences everywhere."""
    params = random_net(sizes, np.float64, seed=len(sizes))
    x = random_pixels(5, sizes[0], seed=1, density=0.7)
    y = np.array([0, 1, 2, 0, 1]) % sizes[-1]
    _, grads = be.loss_and_grads(params, x, y, activation)

    class Wrapped:  # numeric_grads calls be.loss_and_grads(params, x, y)
        @staticmethod
        def loss_and_grads(p, x, y):
            return be.loss_and_grads(p, x, y, activation)

    numeric = numeric_grads(Wrapped, params, x, y)
    assert_close_to_numeric(grads, numeric)


@pytest.mark.parametrize("be", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("output", ["logistic", "identity"])
@pytest.mark.parametrize("sizes", [[6, 5, 1], [7, 5, 3], [6, 20, 4, 2]])
def test_gradients_of_logistic_and_identity_outputs(be, output, sizes):
    """Binary cross-entropy of logistic outputs and the half squared error of identity ones,
    with row weights: analytic gradients match central differences."""
    params = random_net(sizes, np.float64, seed=len(sizes))
    x = random_pixels(5, sizes[0], seed=1, density=0.7)
    rng = np.random.default_rng(2)
    y = ((rng.random((5, sizes[-1])) > 0.5).astype(float) if output == "logistic"
         else rng.standard_normal((5, sizes[-1])))
    sw = rng.random(5) + 0.5
    _, grads = be.loss_and_grads(params, x, y, "tanh", output, sw)

    class Wrapped:  # numeric_grads calls be.loss_and_grads(params, x, y)
        @staticmethod
        def loss_and_grads(p, x, y):
            return be.loss_and_grads(p, x, y, "tanh", output, sw)

    numeric = numeric_grads(Wrapped, params, x, y)
    # scikit-learn's squared error: the loss averages over the C outputs, its gradient (dz =
    # prediction - target) is that of the sum over them
    factor = sizes[-1] if output == "identity" else 1
    for (dW, db), (nW, nb) in zip(grads, numeric):
        for analytic, num in ((dW, nW), (db, nb)):
            err = np.abs(analytic - factor * num).max() / max(np.abs(factor * num).max(), 1e-8)
            assert err < GRAD_RTOL, err


@pytest.mark.parametrize("be", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("sizes", [[6, 3], [6, 5, 4], [6, 20]])  # 20 outputs: wider than LANES
@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_gradients_match_central_differences(be, sizes, weighted):
    """The smoothed cross-entropy's gradients, with and without row weights."""
    params = random_net(sizes, np.float64, seed=3)
    x = random_pixels(5, sizes[0], seed=2, density=0.7)
    y = np.array([0, 1, 2, 0, 1]) % sizes[-1]
    kw = dict(label_smoothing=0.2,
              sample_weight=np.array([1.0, 2.0, 0.5, 1.0, 3.0]) if weighted else None)

    class Smoothed:
        @staticmethod
        def loss_and_grads(params, x, y):
            return be.loss_and_grads(params, x, y, **kw)

    loss, grads = Smoothed.loss_and_grads(params, x, y)
    assert loss != pytest.approx(be.loss_and_grads(params, x, y)[0])  # smoothing changed it
    numeric = numeric_grads(Smoothed, params, x, y)
    assert_close_to_numeric(grads, numeric)


@pytest.mark.parametrize("sizes", [[6, 5, 4], [7, 5, 4, 3]])
def test_dropout_gradients_match_central_differences(sizes):
    """The reference's backward through fixed dropout masks (input and hidden), which the
    Numba kernels match in the parity tests."""
    from fastmnist import augment
    params = random_net(sizes, np.float64, seed=5)
    x = random_pixels(6, sizes[0], seed=3, density=0.8)
    y = np.arange(6) % sizes[-1]
    drop = augment.dropout_for(0.4, 0.3, 0)
    masks = numpy_ref._dropout_masks(params, np.arange(6), np.uint64(99), drop)
    assert all(m is not None and 0 < m.mean() < 1 for m, _ in masks)

    class Masked:
        @staticmethod
        def loss_and_grads(params, x, y):
            loss, grads, _ = numpy_ref._forward_backward(params, x, y, masks=masks)
            return loss, grads

    _, grads = Masked.loss_and_grads(params, x, y)
    numeric = numeric_grads(Masked, params, x, y)
    assert_close_to_numeric(grads, numeric)
