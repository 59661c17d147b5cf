"""A scikit-learn estimator around :class:`fastmnist.MLP` (the ``sklearn`` extra).

>>> from fastmnist.sklearn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=5, random_state=0)
>>> clf.fit(X_train, y_train).score(X_test, y_test)   # doctest: +SKIP

Any number of features and classes (>= 2) and any label values work: the network is built from
the data's shape, and labels are mapped to 0..k-1 through ``classes_``. uint8 features are
scaled by 1/255 inside the kernels, as everywhere in fastmnist; other inputs are used as given
(standardize them, e.g. in a ``Pipeline`` with ``StandardScaler``).
"""

import math

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # sklearn missing, or older than 1.6 (no validate_data)
    from ._extras import missing
    raise missing("fastmnist.sklearn", "scikit-learn >= 1.6", "sklearn") from e

from .model import MLP
from .optim import Optimizer, init_state

__all__ = ["MLPClassifier"]

#: dtypes kept as given by validation; anything else becomes float64 (the first)
_X_DTYPES = [np.float64, np.float32, np.uint8]

_HISTORY_KEYS = ("loss", "accuracy", "epoch_seconds", "lr")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier trained by fastmnist's kernels.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128,)
        Hidden layer widths; ``()`` is softmax regression.
    optimizer : {"adam", "momentum", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
        Learning rate (the peak of a "onecycle" schedule).
    batch_size : int or None, default=128
        Rows per step; None means full-batch gradient descent.
    max_iter : int, default=10
        Epochs (passes over the data) per call to :meth:`fit`.
    schedule : {None, "cosine", "onecycle", "linear", "step"}, default=None
        Learning rate over the ``max_iter`` epochs of :meth:`fit`. :meth:`partial_fit` always
        uses a constant `learning_rate`.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and of the arithmetic.
    init : {"he", "glorot", "uniform"}, default="he"
        Weight initialization.
    backend : {"numba", "numpy"}, default="numba"
        Kernels used for training and prediction.
    threads : int or None, default=None
        Threads for the Numba backend (None: all cores).
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and the early-stopping split. Results are
        reproducible for a fixed int and thread count.
    warm_start : bool, default=False
        If True, :meth:`fit` continues from the weights of the previous fit (same classes and
        features) with a fresh optimizer state, instead of starting over.
    early_stopping : int or None, default=None
        If set, hold out `validation_fraction` of the training data, stop once its accuracy
        has not improved for this many epochs, and keep the best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out for `early_stopping`.
    verbose : bool, default=False
        Show a progress bar over epochs.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        Class labels, sorted; column j of :meth:`predict_proba` is ``classes_[j]``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
    model_ : fastmnist.MLP
        The trained network.
    n_iter_ : int
        Epochs run (accumulated over warm starts and :meth:`partial_fit` calls).
    loss_curve_ : list of float
        Mean training loss of every epoch run.
    validation_scores_ : list of float
        Held-out accuracy per epoch of the last :meth:`fit` (with `early_stopping`).
    best_validation_score_ : float
        Best of `validation_scores_` (with `early_stopping`).
    coefs_ : list of ndarray (n_in, n_out)
        Weight matrices, as in :class:`sklearn.neural_network.MLPClassifier`.
    intercepts_ : list of ndarray (n_out,)
        Bias vectors.
    """

    def __init__(self, hidden_layer_sizes=(128,), optimizer="adam", learning_rate=1e-3,
                 batch_size=128, max_iter=10, schedule=None, dtype="float32", init="he",
                 backend="numba", threads=None, random_state=None, warm_start=False,
                 early_stopping=None, validation_fraction=0.1, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.schedule = schedule
        self.dtype = dtype
        self.init = init
        self.backend = backend
        self.threads = threads
        self.random_state = random_state
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.verbose = verbose

    # ---- training ------------------------------------------------------------------------

    def fit(self, X, y):
        """Train for `max_iter` epochs (from scratch unless `warm_start`).

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            uint8 (scaled by 1/255) or real-valued features, used as given.
        y : array-like (n_samples,)
            Class labels of any type; at least two distinct classes.

        Returns
        -------
        self : MLPClassifier
        """
        self._check_params()
        cont = bool(self.warm_start) and hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=not cont, dtype=_X_DTYPES)
        check_classification_targets(y)
        if not cont:
            self._start(np.unique(y), X.shape[1])
        y = self._encode(y)
        kwargs = {}
        if self.early_stopping is not None:
            X, y, kwargs = self._holdout(X, y)
        history = self.model_.fit(  # a warm start shuffles differently from the last fit
            X, y, epochs=self.max_iter, schedule=self.schedule,
            seed=self._seed + self.n_iter_, **kwargs, **self._fit_kwargs())
        self._record(history)
        if self.early_stopping is not None:
            self.validation_scores_ = list(history["val_accuracy"])
            self.best_validation_score_ = max(self.validation_scores_)
        self._opt_state, self._t = None, 0  # a later partial_fit starts a fresh optimizer
        return self

    def partial_fit(self, X, y, classes=None):
        """Train one epoch over X, y, continuing from the current weights and optimizer state.

        The optimizer state persists across calls (a :meth:`fit` starts it afresh), and the
        learning rate is the constant `learning_rate`: k calls on the same data give the same
        weights as ``fit`` with ``max_iter=k`` and no schedule.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like (n_samples,)
        classes : array-like (n_classes,), optional
            Every label that will ever be seen; required on the first call (when nothing has
            been fitted), optional afterwards and then equal to ``classes_``.

        Returns
        -------
        self : MLPClassifier
        """
        self._check_params()
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if not first and not np.array_equal(classes, self.classes_):
                raise ValueError(f"classes={classes!r} is not the same as on the first call "
                                 f"to fit or partial_fit: {self.classes_!r}")
        X, y = validate_data(self, X, y, reset=first, dtype=_X_DTYPES)
        check_classification_targets(y)
        if first:
            self._start(classes, X.shape[1])
        y = self._encode(y)
        if self._opt_state is None:
            self._opt_state = init_state(self.model_.params, Optimizer(self.optimizer))
        # One epoch as the resumption of a longer run: train.fit continues from step `t` with
        # this optimizer state (updated in place), so Adam's moments and bias correction carry
        # over between calls; the run is long enough for its constant lrs to cover step t.
        # Epoch index ceil(t / steps) and the unshifted seed make k calls on the same data
        # visit the same batches as fit(max_iter=k): the two give the same weights.
        n = len(X)
        batch = n if self.batch_size is None else min(int(self.batch_size), n)
        steps = math.ceil(n / batch)
        epoch = -(-self._t // steps)
        resume = dict(epoch=epoch, step=0, t=self._t, state=self._opt_state,
                      history={k: [] for k in _HISTORY_KEYS}, partial=np.zeros(4))
        history = self.model_.fit(X, y, epochs=epoch + 1, schedule=None,
                                  seed=self._seed, checkpoint=resume,
                                  **self._fit_kwargs())
        self._t += steps
        self._record(history)
        return self

    def _check_params(self):
        """Validate what fastmnist.MLP and fit do not (they check the rest)."""
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        es = self.early_stopping
        if es is not None and (not isinstance(es, (int, np.integer)) or isinstance(es, bool)
                               or es < 1):
            raise ValueError(f"early_stopping must be None or a positive integer, got {es!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    def _start(self, classes, n_features):
        """Fresh network, label mapping and counters."""
        if len(classes) < 2:
            raise ValueError(f"MLPClassifier needs at least 2 classes to train; got "
                             f"{len(classes)} class ({classes!r})")
        self.classes_ = classes
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.model_ = MLP(hidden=self.hidden_layer_sizes, dtype=self.dtype, init=self.init,
                          seed=self._seed, n_features=n_features, n_classes=len(classes),
                          pixels=False)
        self.n_iter_ = 0
        self.loss_curve_ = []
        self._opt_state, self._t = None, 0

    def _encode(self, y):
        """Labels -> int64 indices into classes_; ValueError for unknown labels."""
        idx = np.searchsorted(self.classes_, y)
        idx[idx == len(self.classes_)] = 0
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(f"y contains labels not in classes_ {self.classes_!r}: "
                             f"{np.unique(y[unknown])!r}")
        return idx.astype(np.int64)

    def _holdout(self, X, y):
        """Split off validation_fraction of the rows for early stopping."""
        n = len(X)
        n_val = int(round(self.validation_fraction * n))
        if n_val < 1 or n_val >= n:
            raise ValueError(f"early_stopping: validation_fraction={self.validation_fraction} "
                             f"of {n} samples leaves no training or no validation rows")
        perm = np.random.default_rng(self._seed).permutation(n)
        val, train = perm[:n_val], perm[n_val:]
        kwargs = dict(validation_data=(X[val], y[val]), early_stopping=int(self.early_stopping))
        return X[train], y[train], kwargs

    def _fit_kwargs(self):
        return dict(batch_size=self.batch_size, lr=self.learning_rate,
                    optimizer=self.optimizer, backend=self.backend, threads=self.threads,
                    progress=bool(self.verbose))

    def _record(self, history):
        self.n_iter_ += len(history["loss"])
        self.loss_curve_ = self.loss_curve_ + list(history["loss"])

    # ---- prediction ----------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like (n_samples, n_features)

        Returns
        -------
        proba : ndarray (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``; dtype is the model's `dtype`.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_X_DTYPES)
        return self.model_.predict_proba(X, backend=self.backend)

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like (n_samples, n_features)

        Returns
        -------
        y : ndarray (n_samples,)
            Values from ``classes_``.
        """
        proba = self.predict_proba(X)  # checks fitted before classes_ is touched
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def coefs_(self):
        """Weight matrices [(n_in, n_out), ...] of the fitted network."""
        check_is_fitted(self)
        return [W for W, _ in self.model_.params]

    @property
    def intercepts_(self):
        """Bias vectors [(n_out,), ...] of the fitted network."""
        check_is_fitted(self)
        return [b for _, b in self.model_.params]
