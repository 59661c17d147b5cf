"""Whole epochs through each backend's ``train_epoch``, and the seed notebook's iteration.

``epoch``: 784-10-10 and 784-128-10, float32, He init, SGD lr 0.05, batches of 128 over a
shuffled MNIST training set (60,000 rows, 469 steps). The Numba backend gets the images
``prepare``d once outside the timing, the NumPy reference the raw uint8 images.

``seed iteration``: one full-batch gradient step of the notebook's 784-10-10 (U(-0.5, 0.5)
init, lr 0.2) over all 60,000 rows. The NumPy reference gets float64 images scaled once, as
the notebook keeps them; Numba the prepared uint8 images, in float64 and in float32.

Each round trains on from where the last one stopped, as a real run does.
"""

import numpy as np
import pytest

from fastmnist import backends
from fastmnist.backends import numba_cpu
from fastmnist.backends import numpy_ref as ref

from ._common import (
    SMOKE_ROWS,
    arch,
    check_first_steps,
    check_losses_close,
    check_params_close,
    copy_params,
    epoch_order,
    fastmnist_epoch,
    n_steps,
    net,
    pedantic,
    reference_steps,
    sgd,
    smoke,
    timed,
    validate_epoch,
)

EPOCH_SIZES = [[784, 10, 10], [784, 128, 10]]
EPOCH_LR = 0.05
SEED_SIZES, SEED_LR = [784, 10, 10], 0.2


@pytest.mark.parametrize("sizes", EPOCH_SIZES, ids=arch)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_epoch(benchmark, backend, sizes, mnist, prepared):
    benchmark.group = f"epoch {arch(sizes)}"
    be = backends.get(backend)
    data = prepared if backend == "numba" else mnist.X
    order = epoch_order(benchmark, len(mnist.X))
    lrs = np.full(n_steps(len(order)), EPOCH_LR)
    start, opt = net(sizes), sgd()

    def make(params, order, lrs):
        return fastmnist_epoch(be, params, opt, data, mnist.y, order, lrs)
    check_first_steps(backend, make, start, opt, mnist.X, mnist.y, order, lrs)
    epoch = make(copy_params(start), order, lrs)
    seconds = validate_epoch(backend, epoch, len(lrs), benchmark, mnist)
    benchmark.extra_info.update(rows=len(order), steps=len(lrs), threads=numba_cpu.n_threads())
    pedantic(benchmark, epoch.run, seconds)


@pytest.mark.parametrize("backend,dtype", [("numpy", "float64"), ("numba", "float64"),
                                           ("numba", "float32")],
                         ids=["numpy-f64", "numba-f64", "numba-f32"])
def test_seed_iteration(benchmark, backend, dtype, mnist, prepared):
    benchmark.group = "seed iteration"
    m = 4 * SMOKE_ROWS if smoke(benchmark) else len(mnist.X)
    order, lrs = np.arange(m, dtype=np.int64), np.array([SEED_LR])
    if backend == "numpy":  # the notebook's scaled float copy, made once, outside the timing
        be, data, y = ref, ref.as_float(mnist.X[:m], np.dtype(dtype)), mnist.y[:m]
    else:
        be, data, y = numba_cpu, prepared, mnist.y
    # the reference: one float64 step from the same initial draws, on the uint8 images
    losses0, want = reference_steps(net(SEED_SIZES, "float64", "uniform"), sgd(), mnist.X[:m],
                                    mnist.y[:m], order, lrs, steps=1, batch_size=m)
    params = net(SEED_SIZES, dtype, "uniform")
    epoch = fastmnist_epoch(be, params, sgd(), data, y, order, lrs, batch_size=m)
    losses, _ = timed(epoch.run)  # compiles
    check_losses_close(backend, losses, losses0, dtype)
    check_params_close(f"{backend} {dtype}", params, want, dtype)
    losses, seconds = timed(epoch.run)  # warm; gradient descent goes on from here
    assert np.all(np.isfinite(losses)) and losses[0] < losses0[0], "the loss did not go down"
    benchmark.extra_info.update(rows=m, steps=1, threads=numba_cpu.n_threads())
    pedantic(benchmark, epoch.run, seconds)
