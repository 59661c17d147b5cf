"""fastmnist.sklearn.MLPClassifier against scikit-learn's own, same arguments, same data.

Groups ``sklearn mnist uint8`` and ``sklearn mnist standardized`` (hidden_layer_sizes=(100,),
max_iter=10, random_state=0, everything else scikit-learn's defaults; the standardized data
is StandardScaler's float64 output, which both train in float64, plus fastmnist with its
``dtype="float32"``), and ``sklearn digits`` (load_digits, all defaults, random_state=0).

Each round is a whole ``fit`` of a fresh estimator, as a user's script calls it: validation,
preparing the data, compiled code loaded from Numba's cache (the first call, untimed, fills
it). The test accuracy of the fitted estimator goes into ``extra_info`` and the terminal
summary prints it beside the median time. Under ``--benchmark-disable`` each body runs once on
SMOKE_ROWS rows and 2 epochs. Before timing, each contender's accuracy must be within 2
points of scikit-learn's on the same split (same weights up to float rounding in float64).
"""

import warnings

import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastmnist.sklearn import MLPClassifier  # noqa: E402

from ._common import SMOKE_ROWS, pedantic, smoke, timed  # noqa: E402

#: rounds of the MNIST groups: scikit-learn's fit takes about a minute
MNIST_ROUNDS = 3
MNIST_ARGS = dict(hidden_layer_sizes=(100,), max_iter=10, random_state=0)
#: a contender may not be this far below scikit-learn's test accuracy
MAX_ACCURACY_GAP = 0.02

CONTENDERS = {
    "fastmnist": lambda **kw: MLPClassifier(**kw),
    "fastmnist float32": lambda **kw: MLPClassifier(dtype="float32", **kw),
    "scikit-learn": lambda **kw: SkMLPClassifier(**kw),
}


def _fit_and_score(est, X, y, X_test, y_test):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clone(est).fit(X, y)
    return fitted, float(fitted.score(X_test, y_test))


def _run(benchmark, name, data, kwargs, rounds=None):
    X, y, X_test, y_test = data
    if smoke(benchmark):
        X, y = X[:SMOKE_ROWS], y[:SMOKE_ROWS]
        kwargs = dict(kwargs, max_iter=min(kwargs.get("max_iter", 200), 2))
    est = CONTENDERS[name](**kwargs)
    (_, accuracy), seconds = timed(lambda: _fit_and_score(est, X, y, X_test, y_test))
    if name != "scikit-learn":  # validate before timing
        _, ref = _fit_and_score(CONTENDERS["scikit-learn"](**kwargs), X, y, X_test, y_test)
        assert accuracy >= ref - MAX_ACCURACY_GAP, (name, accuracy, ref)
    fit = lambda: clone(est).fit(X, y)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if rounds is None:
            pedantic(benchmark, fit, seconds)
        else:
            benchmark.pedantic(fit, rounds=1 if smoke(benchmark) else rounds, iterations=1,
                               warmup_rounds=0)
    benchmark.extra_info.update(test_accuracy=accuracy, rows=len(X),
                                epochs=kwargs.get("max_iter", 200))


@pytest.fixture(scope="module")
def standardized(mnist):
    scaler = StandardScaler().fit(mnist.X)
    return (scaler.transform(mnist.X), mnist.y, scaler.transform(mnist.X_test), mnist.y_test)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    return X_train, y_train, X_test, y_test


@pytest.mark.parametrize("name", ["fastmnist", "scikit-learn"])
def test_sklearn_mnist_uint8(benchmark, name, mnist):
    benchmark.group = "sklearn mnist uint8"
    _run(benchmark, name, (mnist.X, mnist.y, mnist.X_test, mnist.y_test), MNIST_ARGS,
         rounds=MNIST_ROUNDS)


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_sklearn_mnist_standardized(benchmark, name, standardized):
    benchmark.group = "sklearn mnist standardized"
    _run(benchmark, name, standardized, MNIST_ARGS, rounds=MNIST_ROUNDS)


@pytest.mark.parametrize("name", ["fastmnist", "scikit-learn"])
def test_sklearn_digits(benchmark, name, digits):
    benchmark.group = "sklearn digits"
    _run(benchmark, name, digits, dict(random_state=0))

