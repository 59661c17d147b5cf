"""The seed notebook's own loop through :mod:`fastmnist.compat`: ``backend="numpy"`` (the
notebook's code) against ``backend="numba"`` (the same math compiled), group ``compat``.

Ten iterations of ``gradient_descent`` on the notebook's 41,000 training examples (its
(784, m) float64 layout, scaled by 1/255), from the same initial weights; the two must end
within 1e-9 of each other before anything is timed. The timing includes what a call does
(the Numba path builds its sparse copy of X on every call).
"""

import numpy as np
import pytest

from fastmnist import compat

from ._common import pedantic, smoke, timed

ITERATIONS, ALPHA, EXAMPLES = 10, 0.10, 41000


@pytest.fixture(scope="module")
def notebook_data(mnist):
    X = np.asarray(mnist.X[:EXAMPLES].T / 255.0)  # (784, m), as the notebook holds it
    return X, mnist.y[:EXAMPLES]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_compat_gradient_descent(benchmark, backend, notebook_data):
    benchmark.group = "compat gradient_descent"
    X, Y = notebook_data
    if smoke(benchmark):
        X, Y = X[:, :2048], Y[:2048]
    np.random.seed(0)
    start = compat.init_params()

    def run(backend=backend):
        return compat.gradient_descent(X, Y, ALPHA, ITERATIONS, backend=backend,
                                       params=start, verbose=False)
    got, seconds = timed(run)  # compiles the numba path
    want = run("numpy") if backend == "numba" else got
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    benchmark.extra_info.update(examples=X.shape[1], iterations=ITERATIONS)
    pedantic(benchmark, run, seconds)
