"""Inference without a flattened copy of the weights (numba_cpu._forward_dense): the same
numbers as the CSR path and the reference, on one row and on many, for every activation and
output; predict_proba's default backend."""

import numpy as np
import pytest
from conftest import random_pixels

from fastmnist import MLP, warmup
from fastmnist.backends import numba_cpu as fast
from fastmnist.backends import numpy_ref as ref
from fastmnist.model import init_params


@pytest.mark.parametrize("sizes", [[784, 128, 10], [784, 10, 10], [784, 40, 20, 3], [30, 5]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 63, 64, 300])  # the calling thread below 64 rows, parts above
def test_dense_rows_equal_the_csr_path(sizes, dtype, n):
    params = init_params(sizes, np.dtype(dtype), "he", np.random.default_rng(n))
    x = random_pixels(n, sizes[0], seed=n)
    for act in ("relu", "tanh", "logistic", "identity"):
        for out in ("softmax", "logistic", "identity"):
            got = fast.forward(params, x, act, out)
            want = fast.forward(params, fast.prepare(x, fast.MODE_DENSE_SKIP), act, out)
            np.testing.assert_array_equal(got, want)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(fast.forward(params, x), ref.forward(params, x), rtol=rtol,
                               atol=1e-6)
    xf = x / 255.0
    np.testing.assert_allclose(fast.forward(params, xf), ref.forward(params, xf), rtol=rtol,
                               atol=1e-6)


def test_non_contiguous_weights_and_rows():
    params = init_params([50, 16, 4], np.dtype(np.float64), "he", np.random.default_rng(0))
    fortran = [(np.asfortranarray(W), b) for W, b in params]
    x = random_pixels(80, 100, 1)[:, ::2]
    np.testing.assert_allclose(fast.forward(fortran, x), ref.forward(params, x), rtol=1e-10)


def test_default_backend_is_numba_once_compiled(monkeypatch):
    model = MLP(hidden=(8,))
    x = random_pixels(3, 784)
    seen = []
    monkeypatch.setattr(warmup, "is_cached", lambda s: seen.append(s) or False)
    assert model._backend(x) == "numpy"
    monkeypatch.setattr(warmup, "is_cached", lambda s: True)
    assert model._backend(x) == "numba"
    np.testing.assert_allclose(model.predict_proba(x), model.predict_proba(x, backend="numpy"),
                               rtol=1e-4, atol=1e-6)
    assert seen[0] == warmup.spec("float32", np.uint8, 784)
