"""The backend protocol's kernels, one benchmark per (kernel, backend), on mini-batch shapes.

Each is called once first (compiling the Numba kernel) and its result checked against the
NumPy reference; only then is it timed. Groups are named after the kernel (and the shape,
where a kernel is timed at two).
"""

import numpy as np
import pytest

from fastmnist import backends
from fastmnist.backends import numpy_ref as ref

from ._common import BATCH, copy_params, net, pedantic, timed, tol

BACKENDS = ["numpy", "numba"]
SIZES = [784, 128, 10]
DTYPE = np.float32
LR = 0.05


def _logits(shape, scale, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(DTYPE)


@pytest.mark.parametrize("shape", [(BATCH, 128), (10000, 128)], ids=["128x128", "10000x128"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_relu(benchmark, backend, shape):
    be = backends.get(backend)
    benchmark.group = "relu" if shape[0] == BATCH else f"relu {shape[0]}x{shape[1]}"
    z = _logits(shape, 1.0)
    np.testing.assert_array_equal(be.relu(z), ref.relu(z))
    benchmark(be.relu, z)


@pytest.mark.parametrize("shape", [(BATCH, 10), (10000, 10)], ids=["128x10", "10000x10"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax(benchmark, backend, shape):
    be = backends.get(backend)
    benchmark.group = "softmax" if shape[0] == BATCH else f"softmax {shape[0]}x{shape[1]}"
    z = _logits(shape, 5.0)
    np.testing.assert_allclose(be.softmax(z), ref.softmax(z), *tol(DTYPE))
    benchmark(be.softmax, z)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear(benchmark, backend, batch):
    """Layer 1 of 784-128-10 on uint8 pixels (the Numba kernel skips the zeros)."""
    be = backends.get(backend)
    benchmark.group = "linear"
    x, _ = batch
    W, b = net(SIZES, DTYPE)[0]
    np.testing.assert_allclose(be.linear(x, W, b), ref.linear(x, W, b), *tol(DTYPE))
    benchmark(be.linear, x, W, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward(benchmark, backend, batch):
    be = backends.get(backend)
    benchmark.group = "forward"
    x, _ = batch
    params = net(SIZES, DTYPE)
    np.testing.assert_allclose(be.forward(params, x), ref.forward(params, x), *tol(DTYPE))
    benchmark(be.forward, params, x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_and_grads(benchmark, backend, batch):
    be = backends.get(backend)
    benchmark.group = "loss_and_grads"
    x, y = batch
    params = net(SIZES, DTYPE)
    loss, grads = be.loss_and_grads(params, x, y)
    loss0, grads0 = ref.loss_and_grads(params, x, y)
    rtol, atol = tol(DTYPE)
    np.testing.assert_allclose(loss, loss0, rtol=rtol)
    for (dW, db), (dW0, db0) in zip(grads, grads0):
        np.testing.assert_allclose(dW, dW0, rtol=rtol, atol=atol)
        np.testing.assert_allclose(db, db0, rtol=rtol, atol=atol)
    benchmark(be.loss_and_grads, params, x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_step(benchmark, backend, batch):
    """One SGD step in place; every round starts again from the same weights (restored in
    pedantic's untimed setup), so that the timed work does not drift."""
    be = backends.get(backend)
    benchmark.group = "train_step"
    x, y = batch
    start = net(SIZES, DTYPE)
    params, want = copy_params(start), copy_params(start)
    loss0 = ref.train_step(want, x, y, LR)
    loss = be.train_step(params, x, y, LR)  # compiles
    rtol, atol = tol(DTYPE)
    np.testing.assert_allclose(loss, loss0, rtol=rtol)
    for (W, b), (W0, b0) in zip(params, want):
        np.testing.assert_allclose(W, W0, rtol=rtol, atol=atol)
        np.testing.assert_allclose(b, b0, rtol=rtol, atol=atol)

    def restore():
        for (W, b), (W0, b0) in zip(params, start):
            W[...] = W0
            b[...] = b0
        return (params, x, y, LR), {}
    _, seconds = timed(lambda: be.train_step(*restore()[0]))  # a warm call sets the rounds
    pedantic(benchmark, be.train_step, seconds, setup=restore)
