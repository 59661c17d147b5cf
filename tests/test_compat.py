"""fastmnist.compat against the teaching notebook's own code, run side by side.

The reference below is the notebook, verbatim; its ``backward_prop`` reads a global ``m``,
which the tests set with :func:`set_m` to the number of training examples.
"""

import os

import numpy as np
import pytest

import fastmnist
from fastmnist import compat
from fastmnist.errors import InputError

#: weights after 20 iterations agree this closely between the notebook and compat
PARITY_ATOL = 1e-10
#: accuracies of the notebook's call sequence agree within this (0.5 percentage points)
ACCURACY_TOL = 0.005

BACKENDS = ("numpy", "numba")


# ---- the notebook, verbatim -----------------------------------------------------------------

m = None


def init_params():
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1) - 0.5
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1) - 0.5
    return W1, b1, W2, b2


def ReLU(Z):
    return np.maximum(Z, 0)


def softmax(Z):
    A = np.exp(Z) / sum(np.exp(Z))
    return A


def forward_prop(W1, b1, W2, b2, X):
    Z1 = W1.dot(X) + b1
    A1 = ReLU(Z1)
    Z2 = W2.dot(A1) + b2
    A2 = softmax(Z2)
    return Z1, A1, Z2, A2


def ReLU_deriv(Z):
    return Z > 0


def one_hot(Y):
    one_hot_Y = np.zeros((Y.size, Y.max() + 1))
    one_hot_Y[np.arange(Y.size), Y] = 1
    one_hot_Y = one_hot_Y.T
    return one_hot_Y


def backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y):
    one_hot_Y = one_hot(Y)
    dZ2 = A2 - one_hot_Y
    dW2 = 1 / m * dZ2.dot(A1.T)
    db2 = 1 / m * np.sum(dZ2)
    dZ1 = W2.T.dot(dZ2) * ReLU_deriv(Z1)
    dW1 = 1 / m * dZ1.dot(X.T)
    db1 = 1 / m * np.sum(dZ1)
    return dW1, db1, dW2, db2


def update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha):
    W1 = W1 - alpha * dW1
    b1 = b1 - alpha * db1
    W2 = W2 - alpha * dW2
    b2 = b2 - alpha * db2
    return W1, b1, W2, b2


def get_predictions(A2):
    return np.argmax(A2, 0)


def get_accuracy(predictions, Y):
    print(predictions, Y)
    return np.sum(predictions == Y) / Y.size


def gradient_descent(X, Y, alpha, iterations):
    W1, b1, W2, b2 = init_params()
    for i in range(iterations):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha)
        if i % 10 == 0:
            print("Iteration: ", i)
            predictions = get_predictions(A2)
            print(get_accuracy(predictions, Y))
    return W1, b1, W2, b2


# ---- helpers and data ---------------------------------------------------------------------------

def set_m(value):
    """Set the notebook's global m."""
    global m
    m = value


def reference_steps(params, X, Y, alpha, iterations):
    """The notebook's loop from given weights (its gradient_descent always calls init_params)."""
    set_m(X.shape[1])
    W1, b1, W2, b2 = params
    for _ in range(iterations):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha)
    return W1, b1, W2, b2


def assert_same_params(got, want, atol=PARITY_ATOL):
    assert len(got) == len(want) == 4
    for name, g, w in zip(("W1", "b1", "W2", "b2"), got, want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=name)


def synthetic(n, seed):
    """Learnable MNIST-like data: X (784, n) in [0, 1], ~80% zeros; Y (n,) with every digit."""
    proto_rng = np.random.default_rng(12345)  # the same ten "digits" for every sample
    prototypes = proto_rng.random((10, 784)) * (proto_rng.random((10, 784)) < 0.2)
    rng = np.random.default_rng(seed)
    Y = np.arange(n) % 10
    rng.shuffle(Y)
    X = 0.5 * prototypes[Y] + rng.random((n, 784)) * (rng.random((n, 784)) < 0.15)
    return np.clip(X, 0, 1).T.copy(), Y


@pytest.fixture(scope="module")
def mnist():
    """(X_train (784, n), Y_train (n,)) of the real MNIST, the notebook's layout and dtypes."""
    if not os.environ.get("FASTMNIST_DATA"):
        pytest.skip("set FASTMNIST_DATA to the folder with the MNIST files")
    X_train, y_train, _, _ = fastmnist.load_mnist()
    return X_train, y_train.astype(np.int64)


def mnist_columns(mnist, start, stop):
    X, y = mnist
    return X[start:stop].T / 255., y[start:stop]


# ---- parity with the notebook ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 37, 300])
def test_gradient_descent_matches_notebook_random(backend, n):
    rng = np.random.default_rng(n)
    X = rng.random((784, n)) * (rng.random((784, n)) < 0.2)
    Y = rng.integers(0, 10, n)
    Y[0] = 9  # one_hot sizes by Y.max() + 1: the notebook needs the digit 9 present
    set_m(n)
    np.random.seed(n)
    want = gradient_descent(X, Y, 0.2, 20)
    np.random.seed(n)
    got = compat.gradient_descent(X, Y, 0.2, 20, backend=backend)
    assert_same_params(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_descent_from_given_params(backend):
    X, Y = synthetic(250, 1)
    np.random.seed(3)
    start = init_params()
    before = [p.copy() for p in start]
    got = compat.gradient_descent(X, Y, 0.1, 20, backend=backend, params=start, verbose=False)
    assert_same_params(got, reference_steps(start, X, Y, 0.1, 20))
    assert_same_params(start, before, atol=0)  # the caller's weights are not modified


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_descent_matches_notebook_mnist(backend, mnist):
    X, Y = mnist_columns(mnist, 0, 2000)
    set_m(X.shape[1])
    np.random.seed(0)
    want = gradient_descent(X, Y, 0.10, 20)
    np.random.seed(0)
    got = compat.gradient_descent(X, Y, 0.10, 20, backend=backend)
    assert_same_params(got, want)


def run_notebook_sequence(fns, X_train, Y_train, X_dev, Y_dev, iterations, **kwargs):
    """The notebook's own calls: train, then score the dev set."""
    np.random.seed(1)
    W1, b1, W2, b2 = fns["gradient_descent"](X_train, Y_train, 0.10, iterations, **kwargs)
    dev_predictions = fns["get_predictions"](fns["forward_prop"](W1, b1, W2, b2, X_dev)[3])
    return fns["get_accuracy"](dev_predictions, Y_dev)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source", ["synthetic", "mnist"])
def test_notebook_sequence_accuracy(backend, source, request):
    if source == "mnist":
        data = request.getfixturevalue("mnist")
        X_dev, Y_dev = mnist_columns(data, 0, 1000)
        X_train, Y_train = mnist_columns(data, 1000, 6000)
        iterations = 100
    else:
        X_dev, Y_dev = synthetic(200, 10)
        X_train, Y_train = synthetic(1000, 11)
        iterations = 60
    set_m(X_train.shape[1])
    want = run_notebook_sequence(globals(), X_train, Y_train, X_dev, Y_dev, iterations)
    got = run_notebook_sequence(vars(compat), X_train, Y_train, X_dev, Y_dev, iterations,
                                backend=backend)
    assert want > 0.5  # it learned something, so the comparison means something
    assert abs(got - want) <= ACCURACY_TOL


# ---- each function's shapes and behaviour ---------------------------------------------------

def test_init_params_shapes_range_and_global_rng():
    np.random.seed(5)
    got = compat.init_params()
    np.random.seed(5)
    want = init_params()
    for g, w, shape in zip(got, want, [(10, 784), (10, 1), (10, 10), (10, 1)]):
        assert g.shape == shape and g.dtype == np.float64
        assert g.min() >= -0.5 and g.max() < 0.5
        np.testing.assert_array_equal(g, w)


def test_relu_and_its_derivative():
    Z = np.array([[-2.0, 0.0, 3.0], [1.5, -0.1, 0.0]])
    np.testing.assert_array_equal(compat.ReLU(Z), [[0, 0, 3], [1.5, 0, 0]])
    d = compat.ReLU_deriv(Z)
    assert d.dtype == bool
    np.testing.assert_array_equal(d, [[False, False, True], [True, False, False]])


def test_softmax_columns_and_overflow_quirk():
    Z = np.random.default_rng(0).standard_normal((10, 7))
    A = compat.softmax(Z)
    assert A.shape == (10, 7)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(A, softmax(Z), rtol=1e-15)
    # unshifted, like the notebook: huge logits overflow to nan
    huge = np.array([[1000.0], [0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(compat.softmax(huge)[0, 0])
        assert np.isnan(softmax(huge)[0, 0])


def test_forward_prop_shapes():
    np.random.seed(0)
    W1, b1, W2, b2 = compat.init_params()
    X = np.random.default_rng(1).random((784, 13))
    got = compat.forward_prop(W1, b1, W2, b2, X)
    want = forward_prop(W1, b1, W2, b2, X)
    for g, w in zip(got, want):
        assert g.shape == (10, 13)
        np.testing.assert_array_equal(g, w)


def test_one_hot_sizes_by_max_label():
    Y = np.array([2, 0, 1, 2])
    oh = compat.one_hot(Y)
    assert oh.shape == (3, 4)  # Y.max() + 1 rows, one column per example
    np.testing.assert_array_equal(oh, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    np.testing.assert_array_equal(oh, one_hot(Y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_top_label_fails_like_the_notebook(backend):
    X = np.random.default_rng(0).random((784, 20))
    Y = np.arange(20) % 8  # no 8 or 9: one_hot(Y) has 8 rows, A2 has 10
    with pytest.raises(ValueError):
        compat.gradient_descent(X, Y, 0.1, 1, backend=backend, verbose=False)


def test_backward_prop_scalar_bias_gradients():
    X, Y = synthetic(40, 2)
    np.random.seed(0)
    W1, b1, W2, b2 = compat.init_params()
    Z1, A1, Z2, A2 = compat.forward_prop(W1, b1, W2, b2, X)
    dW1, db1, dW2, db2 = compat.backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
    assert dW1.shape == (10, 784) and dW2.shape == (10, 10)
    assert np.ndim(db1) == 0 and np.ndim(db2) == 0  # one scalar for every bias
    assert abs(db2) < 1e-12  # each column of A2 - one_hot(Y) sums to 0
    set_m(40)
    want = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
    for g, w in zip((dW1, db1, dW2, db2), want):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-16)
    # m= reproduces a notebook whose global m is not the number of columns (42,000 vs 41,000)
    set_m(50)
    want = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y)
    got = compat.backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y, m=50)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-16)


def test_update_params_returns_new_arrays():
    np.random.seed(0)
    params = compat.init_params()
    grads = [np.ones_like(params[0]), 0.5, np.ones_like(params[2]), -1.0]
    before = [p.copy() for p in params]
    new = compat.update_params(*params, *grads, 0.1)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)
    np.testing.assert_allclose(new[0], before[0] - 0.1)
    np.testing.assert_allclose(new[1], before[1] - 0.05)
    assert new[1].shape == (10, 1)
    np.testing.assert_allclose(new[3], before[3] + 0.1)


def test_predictions_and_accuracy(capsys):
    A2 = np.array([[0.1, 0.7, 0.2], [0.9, 0.3, 0.8]])
    pred = compat.get_predictions(A2)
    np.testing.assert_array_equal(pred, [1, 0, 1])
    Y = np.array([1, 1, 1])
    assert compat.get_accuracy(pred, Y) == pytest.approx(2 / 3)
    assert capsys.readouterr().out == f"{pred} {Y}\n"  # the notebook's print
    assert compat.get_accuracy(pred, Y, verbose=False) == pytest.approx(2 / 3)
    assert capsys.readouterr().out == ""


def printed_lines(capsys, fn, *args, **kwargs):
    fn(*args, **kwargs)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_descent_prints_like_the_notebook(backend, capsys):
    X, Y = synthetic(120, 4)
    set_m(120)
    np.random.seed(2)
    want = printed_lines(capsys, gradient_descent, X, Y, 0.1, 25)
    np.random.seed(2)
    got = printed_lines(capsys, compat.gradient_descent, X, Y, 0.1, 25, backend=backend)
    assert [line for line in want if line.startswith("Iteration")] == [
        "Iteration:  0", "Iteration:  10", "Iteration:  20"]
    assert got == want
    assert printed_lines(capsys, compat.gradient_descent, X, Y, 0.1, 25, backend=backend,
                         verbose=False) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_descent_zero_iterations_returns_start(backend):
    np.random.seed(0)
    start = compat.init_params()
    X, Y = synthetic(30, 0)
    got = compat.gradient_descent(X, Y, 0.1, 0, backend=backend, params=start)
    assert_same_params(got, start, atol=0)


def test_gradient_descent_rejects_bad_input():
    X, Y = synthetic(30, 0)
    with pytest.raises(InputError, match="backend"):
        compat.gradient_descent(X, Y, 0.1, 1, backend="cuda")
    with pytest.raises(InputError, match="transpose"):
        compat.gradient_descent(X.T, Y, 0.1, 1)
    np.random.seed(0)
    W1, b1, W2, b2 = compat.init_params()
    with pytest.raises(InputError, match="b1"):
        compat.gradient_descent(X, Y, 0.1, 1, params=(W1, b1.ravel(), W2, b2))


def test_numba_path_with_other_layer_sizes():
    """The compiled loop takes its sizes from the weights, like the NumPy code."""
    rng = np.random.default_rng(0)
    X = rng.random((20, 64)) * (rng.random((20, 64)) < 0.5)
    Y = np.arange(64) % 3
    start = (rng.random((7, 20)) - 0.5, rng.random((7, 1)) - 0.5,
             rng.random((3, 7)) - 0.5, rng.random((3, 1)) - 0.5)
    want = compat.gradient_descent(X, Y, 0.3, 20, params=start, verbose=False)
    got = compat.gradient_descent(X, Y, 0.3, 20, params=start, backend="numba", verbose=False)
    assert_same_params(got, want)
