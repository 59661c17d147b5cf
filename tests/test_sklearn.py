"""fastmnist.sklearn: a drop-in for scikit-learn's MLPClassifier and MLPRegressor.

scikit-learn's own estimator is the reference: same arguments and seed, same weights.
"""

import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_classification,
    make_moons,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmnist  # noqa: E402
import fastmnist.backends  # noqa: E402
from fastmnist.sklearn import FallbackWarning, MLPClassifier, MLPRegressor  # noqa: E402

BACKENDS = ["numpy", "numba"]


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ---- scikit-learn's checks, default arguments -----------------------------------------------

@pytest.mark.slow  # about 20 s: CI runs every check, the inner loop the few below
@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


#: a few of scikit-learn's checks for the inner loop (``-m "not slow"``)
QUICK_CHECKS = ["check_classifiers_train", "check_fit2d_predict1d", "check_dtype_object",
                "check_fit_idempotent", "check_n_features_in", "check_estimators_nan_inf"]


@pytest.mark.parametrize("estimator", [MLPClassifier(), MLPRegressor()], ids=repr)
@pytest.mark.parametrize("name", QUICK_CHECKS)
def test_quick_sklearn_checks(estimator, name):
    if name == "check_classifiers_train" and isinstance(estimator, MLPRegressor):
        name = "check_regressors_train"
    getattr(estimator_checks, name)(type(estimator).__name__, estimator)


@pytest.mark.slow  # the same checks as above on the other backend: CI, not the inner loop
@parametrize_with_checks([MLPClassifier(backend="numpy"), MLPRegressor(backend="numpy")])
def test_sklearn_estimator_checks_numpy_backend(estimator, check):
    check(estimator)


# ---- the signature ------------------------------------------------------------------------

@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, sk_nn.MLPClassifier),
                                          (MLPRegressor, sk_nn.MLPRegressor)])
def test_signature_is_sklearns_plus_keyword_only_extras(ours, theirs):
    mine = inspect.signature(ours.__init__).parameters
    ref = inspect.signature(theirs.__init__).parameters
    names = list(mine)
    assert names[:len(ref)] == list(ref)
    for name, p in ref.items():
        assert mine[name].default == p.default, name
        assert mine[name].kind == p.kind, name
    assert names[len(ref):] == ["backend", "threads", "dtype", "schedule"]
    assert all(mine[n].kind == inspect.Parameter.KEYWORD_ONLY for n in names[len(ref):])


def test_old_fastmnist_arguments_name_the_new_ones():
    X, y = make_moons(40, random_state=0)
    with pytest.raises(TypeError, match="solver="):
        MLPClassifier(optimizer="adam")
    with pytest.raises(ValueError, match="learning_rate_init=0.01"):
        MLPClassifier(learning_rate=0.01).fit(X, y)
    with pytest.raises(ValueError, match="n_iter_no_change=3"):
        MLPClassifier(early_stopping=3).fit(X, y)
    with pytest.raises(ValueError, match="False turns it off"):
        MLPClassifier(early_stopping=None).fit(X, y)
    with pytest.raises(TypeError, match="Glorot"):
        MLPClassifier(init="he")


def test_verbose_prints_like_sklearn(capsys):
    X, y = make_moons(60, random_state=0)
    MLPClassifier(max_iter=2, verbose=True, random_state=0).fit(X, y)
    ours = capsys.readouterr().out.splitlines()
    sk_nn.MLPClassifier(max_iter=2, verbose=True, random_state=0).fit(X, y)
    ref = capsys.readouterr().out.splitlines()
    assert [line.split("=")[0] for line in ours] == [line.split("=")[0] for line in ref]
    assert ours[0].startswith("Iteration 1, loss = ")


def test_params_stored_untouched_and_cloned():
    clf = MLPClassifier(hidden_layer_sizes=[32, 8], random_state=np.random.RandomState(1),
                        backend="numpy", dtype="float64")
    assert clf.get_params()["hidden_layer_sizes"] == [32, 8]
    twin = clone(clf)
    assert twin.get_params()["backend"] == "numpy" and not hasattr(twin, "coefs_")


# ---- the same weights as scikit-learn's -----------------------------------------------------

def _max_diff(a, b):
    return max(np.abs(p - q).max() for p, q in zip(a.coefs_ + a.intercepts_,
                                                    b.coefs_ + b.intercepts_))


@pytest.fixture(scope="module")
def three_classes():
    return make_classification(300, 12, n_informative=6, n_classes=3, random_state=0)


CASES = {
    "adam-l2": dict(max_iter=5, alpha=1e-2),
    "sgd-nesterov": dict(solver="sgd", max_iter=5, learning_rate_init=0.01),
    "sgd-momentum-invscaling": dict(solver="sgd", nesterovs_momentum=False, max_iter=5,
                                    learning_rate="invscaling", learning_rate_init=0.1),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01,
                         max_iter=60, n_iter_no_change=2, tol=1e-2),
    "tanh-batch-32": dict(activation="tanh", batch_size=32, max_iter=4),
    "logistic-no-shuffle": dict(activation="logistic", shuffle=False, max_iter=4),
    "identity-two-layers": dict(activation="identity", hidden_layer_sizes=(20, 7),
                                max_iter=4),
    "early-stopping": dict(early_stopping=True, max_iter=40, validation_fraction=0.2),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_weights_as_sklearn(three_classes, backend, case, weighted):
    """float64 data, same arguments and seed: the weights of scikit-learn's fit, every
    epoch's loss, the stopping epoch and the validation scores."""
    X, y = three_classes
    kw = dict(random_state=0, **CASES[case])
    fit_kw = {"sample_weight": np.random.default_rng(0).random(len(y)) * 2} if weighted else {}
    ref = sk_nn.MLPClassifier(**kw).fit(X, y, **fit_kw)
    ours = MLPClassifier(backend=backend, **kw).fit(X, y, **fit_kw)
    assert ours.n_iter_ == ref.n_iter_ and ours.t_ == ref.t_
    assert _max_diff(ours, ref) < 1e-12
    # the L2 term of the loss uses the weights interpolated over the epoch
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)
    assert ours.validation_scores_ == ref.validation_scores_
    if ref.best_loss_ is None:  # early stopping
        assert ours.best_loss_ is None
        assert ours.best_validation_score_ == ref.best_validation_score_
    else:
        assert ours.best_loss_ == pytest.approx(ref.best_loss_, rel=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_and_multilabel_like_sklearn(three_classes, backend):
    X, y3 = three_classes
    y = np.where(y3 == 1, "yes", "no")
    ref = sk_nn.MLPClassifier(random_state=1, max_iter=5).fit(X, y)
    ours = MLPClassifier(random_state=1, max_iter=5, backend=backend).fit(X, y)
    assert ours.out_activation_ == ref.out_activation_ == "logistic"
    assert ours.n_outputs_ == 1 and ours.coefs_[-1].shape == (100, 1)
    assert ours.predict_proba(X).shape == (len(X), 2)
    assert _max_diff(ours, ref) < 1e-12
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    Y = np.stack([y3 == 0, y3 == 2, X[:, 0] > 0], axis=1).astype(int)
    ref = sk_nn.MLPClassifier(random_state=1, max_iter=5).fit(X, Y)
    ours = MLPClassifier(random_state=1, max_iter=5, backend=backend).fit(X, Y)
    assert ours.predict_proba(X).shape == ours.predict(X).shape == (len(X), 3)
    assert _max_diff(ours, ref) < 1e-12
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_like_sklearn(three_classes, backend):
    X, y = three_classes
    ref = sk_nn.MLPClassifier(random_state=0)
    ours = MLPClassifier(random_state=0, backend=backend)
    for _ in range(3):  # the optimizer state carries over between calls
        ref.partial_fit(X, y, classes=[0, 1, 2])
        ours.partial_fit(X, y, classes=[0, 1, 2])
    assert ours.n_iter_ == ref.n_iter_ == 1 and ours.t_ == ref.t_ == 900
    assert _max_diff(ours, ref) < 1e-12
    with pytest.raises(ValueError, match="classes"):
        ours.partial_fit(X[:5], np.array([0, 1, 2, 3, 0]))


def test_warm_start_like_sklearn(three_classes):
    X, y = three_classes
    ref = sk_nn.MLPClassifier(random_state=0, max_iter=3, warm_start=True)
    ours = MLPClassifier(random_state=0, max_iter=3, warm_start=True)
    for _ in range(2):
        ref.fit(X, y)
        ours.fit(X, y)
    assert len(ours.loss_curve_) == len(ref.loss_curve_) == 6
    assert _max_diff(ours, ref) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_regressor_like_sklearn(backend):
    X, y = make_regression(300, 12, n_targets=2, noise=1.0, random_state=0)
    y = y / 100
    for kw in (dict(max_iter=5, hidden_layer_sizes=(20, 7)),
               dict(max_iter=5, solver="sgd", activation="tanh", learning_rate_init=1e-3)):
        ref = sk_nn.MLPRegressor(random_state=0, **kw).fit(X, y)
        ours = MLPRegressor(random_state=0, backend=backend, **kw).fit(X, y)
        assert ours.out_activation_ == "identity" and ours.predict(X).shape == (300, 2)
        assert _max_diff(ours, ref) < 1e-12
        np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)
        assert ours.score(X, y) == pytest.approx(ref.score(X, y), abs=1e-9)


# ---- the defaults on small data: scikit-learn's accuracy --------------------------------------

@pytest.mark.slow  # six default fits on each library
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dataset", ["digits", "moons"])
def test_default_accuracy_within_a_point_of_sklearn(dataset, seed):
    if dataset == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        X, y = make_moons(600, noise=0.3, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=seed)
    ref = sk_nn.MLPClassifier(random_state=seed).fit(X_train, y_train)
    ours = MLPClassifier(random_state=seed).fit(X_train, y_train)
    assert ours.coefs_[0].dtype == np.float64  # float64 X trains in float64, as scikit-learn
    assert abs(ours.score(X_test, y_test) - ref.score(X_test, y_test)) <= 0.01


def test_float32_weights_reach_sklearns_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    ref = sk_nn.MLPClassifier(random_state=0).fit(X_train, y_train)
    ours = MLPClassifier(random_state=0, dtype="float32").fit(X_train, y_train)
    assert ours.coefs_[0].dtype == np.float32
    assert abs(ours.score(X_test, y_test) - ref.score(X_test, y_test)) <= 0.01


# ---- inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_uint8_features_are_used_as_given(backend):
    """No implicit 1/255: uint8 X trains exactly as the same values in float32."""
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, (150, 12), dtype=np.uint8)
    X8[rng.random(X8.shape) < 0.5] = 0
    y = (X8[:, 0] > X8[:, 1]).astype(int)
    kw = dict(random_state=0, hidden_layer_sizes=(8,), max_iter=3, backend=backend)
    a = MLPClassifier(**kw).fit(X8, y)
    b = MLPClassifier(**kw).fit(X8.astype(np.float32), y)
    assert a.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.predict_proba(X8), b.predict_proba(X8.astype(np.float32)),
                               rtol=1e-5, atol=1e-6)
    scaled = MLPClassifier(**kw).fit(X8 / 255.0, y)
    assert not np.allclose(scaled.coefs_[0], a.coefs_[0], atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_csr_input(backend, monkeypatch):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 30)) * (rng.random((200, 30)) < 0.2)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    kw = dict(random_state=0, max_iter=5, backend=backend)
    dense = MLPClassifier(**kw).fit(X, y)
    Xs = sparse.csr_matrix(X)
    if backend == "numba":  # walked as CSR: never made dense
        def no_dense(*args, **kwargs):
            raise AssertionError("the sparse matrix was made dense")
        monkeypatch.setattr(sparse.csr_matrix, "toarray", no_dense)
        monkeypatch.setattr(sparse.csr_matrix, "todense", no_dense)
    sp = MLPClassifier(**kw).fit(Xs, y)
    assert _max_diff(sp, dense) < 1e-12
    np.testing.assert_allclose(sp.predict_proba(Xs), dense.predict_proba(X), atol=1e-12)


def test_dataframe_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = make_moons(80, random_state=0)
    df = pd.DataFrame(X, columns=["width", "height"])
    clf = MLPClassifier(max_iter=3, random_state=0).fit(df, y)
    assert list(clf.feature_names_in_) == ["width", "height"]
    assert clf.n_features_in_ == 2
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_pipeline_and_grid_search(three_classes):
    """The same search as with scikit-learn's estimator: same choice, same score."""
    X, y = three_classes
    results = []
    for cls in (MLPClassifier, sk_nn.MLPClassifier):
        pipe = make_pipeline(StandardScaler(), cls(random_state=0, max_iter=30))
        grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)]}, cv=3)
        grid.fit(10 * X + 3, y)
        results.append((grid.best_params_, grid.score(10 * X + 3, y)))
    assert results[0][0] == results[1][0]
    assert results[0][1] == pytest.approx(results[1][1], abs=1e-12)


# ---- lbfgs and others without a compiled path ---------------------------------------------------

def test_lbfgs_falls_back_to_sklearn_with_a_warning(three_classes):
    X, y = three_classes
    ref = sk_nn.MLPClassifier(solver="lbfgs", random_state=0, max_iter=50).fit(X, y)
    with pytest.warns(FallbackWarning, match="lbfgs"):
        ours = MLPClassifier(solver="lbfgs", random_state=0, max_iter=50).fit(X, y)
    assert _max_diff(ours, ref) == 0
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-12)
    with pytest.raises(AttributeError, match="stochastic"):
        ours.partial_fit(X, y)


def test_schedule_extra_and_its_conflict(three_classes):
    X, y = three_classes
    clf = MLPClassifier(random_state=0, max_iter=3, schedule="cosine").fit(X, y)
    assert clf.n_iter_ == 3
    const = MLPClassifier(random_state=0, max_iter=3).fit(X, y)
    assert _max_diff(clf, const) > 0
    with pytest.raises(ValueError, match="learning_rate='constant'"):
        MLPClassifier(solver="sgd", learning_rate="adaptive", schedule="cosine").fit(X, y)


def test_missing_sklearn_gives_install_hint():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import fastmnist.sklearn\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install -e '.[sklearn]'" in out


@pytest.mark.slow
def test_mnist_subset_uint8_like_sklearn():
    if not os.environ.get("FASTMNIST_DATA"):
        pytest.skip("set FASTMNIST_DATA to the folder with the MNIST files")
    X_train, y_train, X_test, y_test = fastmnist.load_mnist()
    kw = dict(hidden_layer_sizes=(64,), max_iter=3, random_state=0)
    ours = MLPClassifier(**kw).fit(X_train[:6000], y_train[:6000])  # uint8, used as given
    ref = sk_nn.MLPClassifier(**kw).fit(X_train[:6000], y_train[:6000])
    assert ours.n_features_in_ == 784 and list(ours.classes_) == list(range(10))
    assert abs(ours.score(X_test[:2000], y_test[:2000])
               - ref.score(X_test[:2000], y_test[:2000])) <= 0.02


def test_thread_count_and_chunking_do_not_change_the_weights(three_classes):
    """threads=None cuts epochs into chunks on a thread count it measures; threads=1 runs
    each epoch in one call: the same bits."""
    X, y = three_classes
    kw = dict(random_state=0, batch_size=8, max_iter=3, alpha=1e-3)  # 38 steps an epoch
    a = MLPClassifier(threads=1, **kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y)
    assert b._governor() is not None or fastmnist.backends.get("numba").n_threads() == 1
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)
    assert a.loss_curve_ == b.loss_curve_


def test_poisson_regressor_falls_back_to_sklearn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    ref = sk_nn.MLPRegressor(loss="poisson", random_state=0, max_iter=20).fit(X, y)
    with pytest.warns(FallbackWarning):
        ours = MLPRegressor(loss="poisson", random_state=0, max_iter=20).fit(X, y)
    assert ours.out_activation_ == "exp"
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-10)
