"""fastmnist.sklearn.MLPClassifier: scikit-learn's estimator checks and everyday use."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmnist  # noqa: E402
from fastmnist.sklearn import MLPClassifier  # noqa: E402

HAVE_NUMBA_BACKEND = importlib.util.find_spec("fastmnist.backends.numba_cpu") is not None
BACKENDS = ["numpy"] + (["numba"] if HAVE_NUMBA_BACKEND else [])

#: small and quick, yet enough to pass check_classifiers_train (> 83% on blobs)
SMALL = dict(hidden_layer_sizes=(16,), learning_rate=1e-2, batch_size=16, max_iter=30)


@parametrize_with_checks([MLPClassifier(backend=b, **SMALL) for b in BACKENDS])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    """3 classes with string labels, 20 features, standardized-ish floats."""
    X, y = make_classification(n_samples=400, n_features=20, n_informative=8, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.0, random_state=0)
    labels = np.array(["cat", "dog", "emu"])
    return X, labels[y]


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_mnist_shapes_and_string_labels(backend, data):
    X, y = data
    clf = MLPClassifier(backend=backend, random_state=0, **SMALL).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.n_features_in_ == 20
    assert clf.model_.sizes == [20, 16, 3]
    proba = clf.predict_proba(X)
    assert proba.shape == (400, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(clf.classes_)
    assert clf.score(X, y) > 0.9
    assert clf.n_iter_ == SMALL["max_iter"] == len(clf.loss_curve_)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert [W.shape for W in clf.coefs_] == [(20, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (3,)]


def test_pipeline_and_grid_search(data):
    X, y = data
    X = 10.0 * X + 3.0  # badly scaled: the scaler matters
    pipe = make_pipeline(StandardScaler(), MLPClassifier(backend="numpy", random_state=0,
                                                         **SMALL))
    assert pipe.fit(X, y).score(X, y) > 0.9
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["mlpclassifier__hidden_layer_sizes"] in [(4,), (16,)]
    assert grid.score(X, y) > 0.8
    assert set(grid.predict(X)) <= {"cat", "dog", "emu"}


def test_params_stored_untouched_and_cloned():
    clf = MLPClassifier(hidden_layer_sizes=[32, 8], random_state=np.random.RandomState(1))
    assert clf.get_params()["hidden_layer_sizes"] == [32, 8]
    twin = clone(clf)
    assert twin.get_params()["hidden_layer_sizes"] == [32, 8]
    assert not hasattr(twin, "model_")


def test_random_state_reproducible(data):
    X, y = data
    a = MLPClassifier(backend="numpy", random_state=3, **SMALL).fit(X, y).predict_proba(X)
    b = MLPClassifier(backend="numpy", random_state=3, **SMALL).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    rs = np.random.RandomState(0)
    c = MLPClassifier(backend="numpy", random_state=rs, **SMALL).fit(X, y)
    assert c.score(X, y) > 0.9
    assert MLPClassifier(backend="numpy", random_state=None, **SMALL).fit(X, y).n_iter_ == 30


def test_uint8_features_are_scaled_like_float():
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, (120, 12), dtype=np.uint8)
    y = (X8[:, 0] > 127).astype(int)
    kw = dict(backend="numpy", dtype="float64", random_state=0, hidden_layer_sizes=(8,),
              max_iter=3)
    a = MLPClassifier(**kw).fit(X8, y)
    b = MLPClassifier(**kw).fit(X8 / 255.0, y)
    np.testing.assert_allclose(a.predict_proba(X8), b.predict_proba(X8 / 255.0), atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_equals_fit(backend, data):
    X, y = data
    kw = dict(backend=backend, random_state=5, hidden_layer_sizes=(8,), batch_size=64,
              threads=1)
    full = MLPClassifier(max_iter=3, **kw).fit(X, y)
    inc = MLPClassifier(**kw)
    for _ in range(3):
        inc.partial_fit(X, y, classes=["emu", "cat", "dog"])
    assert inc.n_iter_ == 3 and len(inc.loss_curve_) == 3
    np.testing.assert_allclose(inc.loss_curve_, full.loss_curve_, rtol=1e-6)
    for (W1, b1), (W2, b2) in zip(inc.model_.params, full.model_.params):
        np.testing.assert_allclose(W1, W2, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b1, b2, rtol=1e-6, atol=1e-7)


def test_partial_fit_classes_contract(data):
    X, y = data
    clf = MLPClassifier(backend="numpy", random_state=0, **SMALL)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50][y[:50] == "cat"], y[:50][y[:50] == "cat"],
                    classes=["cat", "dog", "emu"])  # one class in a batch is fine
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3], np.array(["cat", "dog", "yak"]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y)


def test_warm_start_continues(data):
    X, y = data
    kw = dict(backend="numpy", random_state=0, hidden_layer_sizes=(8,), max_iter=2)
    clf = MLPClassifier(warm_start=True, **kw).fit(X, y)
    first = list(clf.loss_curve_)
    clf.fit(X, y)
    assert clf.n_iter_ == 4 and clf.loss_curve_[:2] == first
    assert clf.loss_curve_[2] < first[0]  # continued from trained weights
    cold = MLPClassifier(**kw).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ == 2 and cold.loss_curve_ == first  # refit starts over


def test_early_stopping(data):
    X, y = data
    clf = MLPClassifier(backend="numpy", random_state=0, hidden_layer_sizes=(16,),
                        learning_rate=3e-2, batch_size=16, max_iter=200, early_stopping=3,
                        validation_fraction=0.2).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(backend="numpy", early_stopping=0).fit(X, y)


def test_single_class_and_bad_params(data):
    X, y = data
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier(backend="numpy").fit(X[:10], np.zeros(10))
    with pytest.raises(ValueError, match="max_iter"):
        MLPClassifier(backend="numpy", max_iter=0).fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        MLPClassifier(backend="numpy", optimizer="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="cuda", max_iter=1).fit(X, y)


def test_missing_sklearn_gives_install_hint():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import fastmnist.sklearn\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install -e '.[sklearn]'" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_mnist_subset_uint8(backend):
    if not os.environ.get("FASTMNIST_DATA"):
        pytest.skip("set FASTMNIST_DATA to the folder with the MNIST files")
    X_train, y_train, X_test, y_test = fastmnist.load_mnist()
    clf = MLPClassifier(backend=backend, hidden_layer_sizes=(64,), max_iter=3, random_state=0)
    clf.fit(X_train[:6000], y_train[:6000])  # uint8 pixels, scaled inside the kernels
    assert clf.n_features_in_ == 784 and list(clf.classes_) == list(range(10))
    assert clf.score(X_test[:2000], y_test[:2000]) > 0.85
