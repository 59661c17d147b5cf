"""Drop-in replacements for scikit-learn's MLPClassifier and MLPRegressor (``sklearn`` extra).

Change the import and nothing else::

    # from sklearn.neural_network import MLPClassifier
    from fastmnist.sklearn import MLPClassifier

The constructors are scikit-learn 1.9's, with the same defaults and meanings, and fastmnist's
own keyword-only arguments after them (``backend``, ``threads``, ``dtype``, ``schedule``).
Training follows scikit-learn's stochastic solvers step for step (same initialization,
batches, updates, L2 term, stopping rules; see :mod:`fastmnist.integrations._sk_solver`), with
each epoch run by fastmnist's compiled kernels. Features are used as given, uint8 included (no
1/255).

``solver="lbfgs"`` has no compiled path: it is served by scikit-learn's own estimator, with a
:class:`FallbackWarning`, and the fitted weights are copied in (prediction then runs here).
"""

import contextlib
import warnings
from numbers import Integral, Real

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d, shuffle
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as e:  # sklearn missing, or older than 1.6 (no validate_data)
    from .._extras import missing
    raise missing("fastmnist.sklearn", "scikit-learn >= 1.6", "sklearn") from e

from .. import backends
from ..governor import Governor
from ..optim import SCHEDULES, lr_schedule
from ._sk_solver import Solver, glorot_init, run_epoch

__all__ = ["MLPClassifier", "MLPRegressor", "FallbackWarning"]

#: arguments of fastmnist's earlier estimator -> what to write now
_RENAMED = {
    "optimizer": "solver= ('adam' or 'sgd'; momentum is solver='sgd' with momentum=...)",
    "init": "nothing: the initialization is scikit-learn's (Glorot uniform)",
}


class FallbackWarning(UserWarning):
    """A setting without a compiled path was served by scikit-learn's own estimator."""


def _legacy_check(est):
    """Clear errors for fastmnist's earlier meanings of scikit-learn's argument names."""
    lr = est.learning_rate
    if isinstance(lr, Real) and not isinstance(lr, bool):
        raise ValueError(
            f"learning_rate={lr!r}: learning_rate is now scikit-learn's schedule name "
            "('constant', 'invscaling' or 'adaptive'); pass the step size as "
            f"learning_rate_init={lr!r}")
    es = est.early_stopping
    if es is None:
        raise ValueError("early_stopping=None: early_stopping is now a bool, as in "
                         "scikit-learn; False turns it off")
    if isinstance(es, (int, np.integer)) and not isinstance(es, (bool, np.bool_)):
        raise ValueError(
            f"early_stopping={es!r}: early_stopping is now a bool, as in scikit-learn; the "
            f"patience in epochs is n_iter_no_change={es!r}")


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, training, the forward pass."""

    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        "backend": [StrOptions(set(backends.NAMES))],
        "threads": [Interval(Integral, 1, None, closed="left"), None],
        "dtype": [StrOptions({"float32", "float64"}), None],
        "schedule": [StrOptions(set(SCHEDULES)), None],
    }

    def __new__(cls, *args, **kwargs):
        for old, new in _RENAMED.items():
            if old in kwargs:
                raise TypeError(f"{cls.__name__}: {old}= is no longer an argument (the "
                                f"signature is scikit-learn's); use {new}")
        return super().__new__(cls)

    # ---- training ------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight, incremental):
        _legacy_check(self)
        self._validate_params()
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if self.solver == "lbfgs":
            return self._fit_lbfgs(X, y, sample_weight)
        if self.schedule is not None and self.learning_rate != "constant":
            raise ValueError(f"schedule={self.schedule!r} sets the learning rate of every "
                             f"step; it needs learning_rate='constant', got "
                             f"{self.learning_rate!r}")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        self.n_outputs_ = Y.shape[1]
        self._random_state = check_random_state(self.random_state)
        dtype = self._compute_dtype(X)
        if first_pass:
            self._initialize(Y, [n_features, *hidden, self.n_outputs_], dtype)
        elif self.coefs_[0].dtype != dtype:
            self.coefs_ = [W.astype(dtype) for W in self.coefs_]
            self.intercepts_ = [b.astype(dtype) for b in self.intercepts_]
        self._fit_stochastic(X, Y, sample_weight, incremental, dtype)
        return self

    def _compute_dtype(self, X):
        """The weights' dtype: `dtype` if set, else float64 for float64 X, float32 otherwise
        (float32 and uint8 X)."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float64 if X.dtype == np.float64 else np.float32)

    def _initialize(self, Y, sizes, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation()
        params = glorot_init(self._random_state, sizes, self.activation, dtype)
        self.coefs_ = [W for W, _ in params]
        self.intercepts_ = [b for _, b in params]
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _head(self):
        """The backends' output layer: softmax, logistic or identity ("exp", of a poisson
        model fitted by scikit-learn, is identity followed by np.exp in _forward_prepared)."""
        return "identity" if self.out_activation_ == "exp" else self.out_activation_

    def _targets(self, Y, dtype):
        """Y (n, n_outputs) as the kernels take it: labels (n,) for softmax, else rows."""
        if self.out_activation_ == "softmax":
            return np.argmax(Y, axis=1).astype(np.int64)
        return np.ascontiguousarray(Y, dtype=dtype)

    def _prepare(self, X, dtype):
        """X for the backend: uint8 kept with a scale of 1, floats cast to `dtype`, a sparse
        matrix walked as CSR by the Numba backend (made dense for the NumPy one)."""
        be = backends.get(self.backend)
        if hasattr(X, "tocsr"):  # scipy.sparse
            if self.backend == "numba":
                X = X.tocsr()
                values = X.data if X.data.dtype == np.uint8 else X.data.astype(dtype)
                return be.prepare_csr(X.indptr, X.indices, values, X.shape[1], scale=1.0)
            X = X.toarray()
        if X.dtype != np.uint8:
            X = np.ascontiguousarray(X, dtype=dtype)
        return be.prepare(X, scale=1.0)

    def _threads(self):
        be = backends.get(self.backend)
        if self.threads is not None and hasattr(be, "threads"):
            return be.threads(self.threads)
        return contextlib.nullcontext()

    def _governor(self):
        """threads=None on the Numba backend: each chunk of steps runs on one thread or all,
        whichever was faster lately (as :meth:`fastmnist.MLP.fit` does; a busy neighbour
        process makes the threads' barriers stall); the weights are the same either way."""
        from ..train import CHUNK_STEPS
        be = backends.get(self.backend)
        if self.threads is None and hasattr(be, "threads") and be.n_threads() > 1:
            return Governor(be.n_threads(), CHUNK_STEPS)
        return None

    def _fit_stochastic(self, X, Y, sample_weight, incremental, dtype):
        be = backends.get(self.backend)
        params = [(np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(b, dtype=dtype))
                  for W, b in zip(self.coefs_, self.intercepts_)]
        if not incremental or not hasattr(self, "_solver"):
            self._solver = Solver(self, params)
        elif self._solver.state and self._solver.state[0][0][0].dtype != dtype:
            self._solver = Solver(self, params)
        solver = self._solver
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        n = X.shape[0]
        idx = np.arange(n)
        val_idx = None
        if self.early_stopping:
            stratify = Y if (self._is_classifier() and self.n_outputs_ == 1) else None
            idx, val_idx = train_test_split(idx, random_state=self._random_state,
                                            test_size=self.validation_fraction,
                                            stratify=stratify)
            if len(val_idx) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            X_val = X[val_idx]
            y_val = self._val_targets(Y[val_idx])
            sw_val = None if sample_weight is None else sample_weight[val_idx]
            data_val = self._prepare(X_val, dtype)
        n_train = len(idx)
        data = self._prepare(X, dtype)
        targets = self._targets(Y, dtype)
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n_train))
        steps_per_epoch = -(-n_train // batch_size)
        lrs_all = (lr_schedule(self.schedule, solver.lr_init, self.max_iter * steps_per_epoch)
                   if self.schedule is not None else None)
        sample_idx = np.arange(n_train)
        act, head = self.activation, self._head()
        governor = self._governor()
        try:
            self.n_iter_ = 0
            with self._threads():
                for it in range(self.max_iter):
                    if self.shuffle:
                        sample_idx = shuffle(sample_idx, random_state=self._random_state)
                    order = idx[sample_idx]
                    lrs = (None if lrs_all is None else
                           lrs_all[it * steps_per_epoch:(it + 1) * steps_per_epoch])
                    loss = run_epoch(be, solver, params, data, targets, order, batch_size,
                                     activation=act, output=head, sample_weight=sample_weight,
                                     alpha=float(self.alpha), lrs=lrs, governor=governor)
                    self.coefs_ = [W for W, _ in params]
                    self.intercepts_ = [b for _, b in params]
                    self.n_iter_ += 1
                    self.loss_ = loss
                    self.t_ += n_train
                    self.loss_curve_.append(loss)
                    if self.verbose:
                        print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                    if self.early_stopping:
                        score = self._score_prepared(data_val, y_val, sw_val)
                    else:
                        score = None
                    self._update_no_improvement_count(score)
                    solver.iteration_ends(self.t_)
                    if self._no_improvement_count > self.n_iter_no_change:
                        if self.early_stopping:
                            msg = (f"Validation score did not improve more than "
                                   f"tol={self.tol:f} for {self.n_iter_no_change} "
                                   "consecutive epochs.")
                        else:
                            msg = (f"Training loss did not improve more than "
                                   f"tol={self.tol:f} for {self.n_iter_no_change} "
                                   "consecutive epochs.")
                        if solver.trigger_stopping(msg, self.verbose):
                            break
                        self._no_improvement_count = 0
                    if incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                            "reached and the optimization hasn't converged yet.",
                            ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if self.early_stopping:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _update_no_improvement_count(self, val_score):
        """scikit-learn's: count epochs without an improvement of tol, keep the best."""
        if self.early_stopping:
            self.validation_scores_.append(val_score)
            if self.verbose:
                print(f"Validation score: {val_score:f}")
            if val_score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if val_score > self.best_validation_score_:
                self.best_validation_score_ = val_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, X, y, sample_weight):
        """solver="lbfgs": scikit-learn's estimator fits, its weights are copied in."""
        warnings.warn(f"{type(self).__name__}(solver='lbfgs') has no compiled path in "
                      "fastmnist: scikit-learn's own estimator fits it (prediction then "
                      "runs here). Use solver='adam' or 'sgd' for fastmnist's kernels.",
                      FallbackWarning, stacklevel=3)
        sk_params = {k: v for k, v in self.get_params().items()
                     if k in self._sklearn_class()._parameter_constraints}
        sk = self._sklearn_class()(**sk_params)
        if self.warm_start and hasattr(self, "coefs_") and hasattr(self, "_lbfgs_estimator"):
            sk = self._lbfgs_estimator.set_params(**sk_params)  # continues from its weights
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackWarning)
            sk.fit(X, y, sample_weight=sample_weight)
        self._lbfgs_estimator = sk
        for attr in ("coefs_", "intercepts_", "n_iter_", "t_", "loss_", "loss_curve_",
                     "best_loss_", "n_layers_", "n_outputs_", "out_activation_",
                     "n_features_in_", "feature_names_in_", "classes_", "_label_binarizer"):
            if hasattr(sk, attr):
                setattr(self, attr, getattr(sk, attr))
            elif attr == "feature_names_in_" and hasattr(self, attr):
                delattr(self, attr)
        self.coefs_ = [np.ascontiguousarray(W) for W in self.coefs_]
        self.intercepts_ = [np.ascontiguousarray(b) for b in self.intercepts_]
        self.validation_scores_ = self.best_validation_score_ = None
        return self

    # ---- prediction ----------------------------------------------------------------------

    def _forward(self, X, check_input=True):
        """The network's outputs (n, n_outputs): softmax, logistic or identity."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=(np.float64, np.float32, np.uint8))
        return self._forward_prepared(self._prepare(X, self.coefs_[0].dtype))

    def _forward_prepared(self, data):
        be = backends.get(self.backend)
        dtype = self.coefs_[0].dtype
        params = [(np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(b, dtype=dtype))
                  for W, b in zip(self.coefs_, self.intercepts_)]
        with self._threads():
            out = be.forward(params, data, self.activation, self._head())
        return np.exp(out) if self.out_activation_ == "exp" else out

    def _score_prepared(self, data, y, sample_weight):
        """The validation score of early stopping: accuracy or R^2 (NaN for non-finite)."""
        y_pred = self._outputs_to_predictions(self._forward_prepared(data))
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_SHARED_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers (compiled in both backends).
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        "adam" and "sgd" run fastmnist's kernels, step for step as scikit-learn's. "lbfgs" is
        fitted by scikit-learn's own estimator, with a :class:`FallbackWarning`.
    alpha : float, default=0.0001
        L2 penalty: each step adds ``alpha * W / n_batch`` to the weights' gradient (biases
        are not penalized) and ``0.5 * alpha * |W|^2 / n_batch`` to the loss.
    batch_size : int or "auto", default="auto"
        Rows per step; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Learning-rate schedule of solver="sgd" (Adam ignores it, as in scikit-learn).
    learning_rate_init : float, default=0.001
        The initial step size.
    power_t : float, default=0.5
        Exponent of "invscaling": ``lr = learning_rate_init / (t + 1)^power_t`` after each
        epoch, t the samples seen.
    max_iter : int, default=200
        Epochs (passes over the data) at most.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the shuffling and the early-stopping split, drawn in
        scikit-learn's order: the same int gives the same initial weights and batches.
    tol : float, default=1e-4
        Training stops (or "adaptive" divides lr by 5) once the loss (or the validation
        score) has not improved by tol for more than `n_iter_no_change` epochs.
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights.
    momentum : float, default=0.9
        Momentum of solver="sgd".
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for solver="sgd".
    early_stopping : bool, default=False
        Hold out `validation_fraction` of the data (stratified for binary targets, as in
        scikit-learn), stop on its score and keep the best weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's.
    n_iter_no_change : int, default=10
        Patience of the stopping rule, in epochs.
    max_fun : int, default=15000
        Used by solver="lbfgs" only.
    backend : {"numba", "numpy"}, default="numba"
        fastmnist's kernels for training and prediction (keyword-only, as are the next).
    threads : int or None, default=None
        Numba threads. None: each chunk of steps runs on one thread or on all, whichever was
        faster lately (as in :meth:`fastmnist.MLP.fit`). Results do not depend on it.
    dtype : {"float32", "float64"} or None, default=None
        Precision of the weights and arithmetic. None: float64 for float64 X, float32 for
        float32 and uint8 X (as scikit-learn, which keeps float32 X in float32).
    schedule : {None, "constant", "cosine", "onecycle", "linear", "step"}, default=None
        fastmnist's per-step learning-rate schedule over the `max_iter` epochs, from
        `learning_rate_init`; needs learning_rate="constant".

    Attributes
    ----------
    coefs_ : list of ndarray (n_in, n_out)
    intercepts_ : list of ndarray (n_out,)
    n_iter_ : int
        Epochs run by the last call to fit (1 after partial_fit), as in scikit-learn.
    t_ : int
        Training samples seen, over all calls.
    loss_ : float
    loss_curve_ : list of float
    best_loss_ : float or None
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
"""


def _init(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
          batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
          max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
          warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
          validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
          max_fun=15000, backend="numba", threads=None, dtype=None, schedule=None):
    self.hidden_layer_sizes = hidden_layer_sizes
    self.activation = activation
    self.solver = solver
    self.alpha = alpha
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.learning_rate_init = learning_rate_init
    self.power_t = power_t
    self.max_iter = max_iter
    self.shuffle = shuffle
    self.random_state = random_state
    self.tol = tol
    self.verbose = verbose
    self.warm_start = warm_start
    self.momentum = momentum
    self.nesterovs_momentum = nesterovs_momentum
    self.early_stopping = early_stopping
    self.validation_fraction = validation_fraction
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.n_iter_no_change = n_iter_no_change
    self.max_fun = max_fun
    self.backend = backend
    self.threads = threads
    self.dtype = dtype
    self.schedule = schedule


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier: scikit-learn's, trained by fastmnist.

    Multiclass targets get a softmax output; binary and multilabel ones a logistic output
    (one unit for binary, and predict_proba of shape (n, 2)), as in scikit-learn.
""" + _SHARED_DOC + """    classes_ : ndarray (n_classes,)
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="numba", threads=None, dtype=None, schedule=None):
        _init(**{k: v for k, v in locals().items() if k != "__class__"})

    @staticmethod
    def _sklearn_class():
        return _SkMLPClassifier

    @staticmethod
    def _is_classifier():
        return True

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32, np.uint8), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _val_targets(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    @staticmethod
    def _score_function(y, y_pred, sample_weight=None):
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def _outputs_to_predictions(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features, used as given (uint8 included: no implicit scaling).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels, or a binary indicator matrix for multilabel targets.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X and y, continuing from the current weights and optimizer.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class of all calls; required on the first call.

        Returns
        -------
        self : MLPClassifier
        """
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted classes, shape (n_samples,) or (n_samples, n_classes) for multilabel."""
        check_is_fitted(self)
        return self._outputs_to_predictions(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes); columns follow ``classes_``."""
        check_is_fitted(self)
        out = self._forward(X)
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor: scikit-learn's, trained by fastmnist.

    Squared error and an identity output. scikit-learn's ``loss="poisson"`` has no compiled
    path: it is fitted by scikit-learn's own estimator, with a :class:`FallbackWarning`.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
""" + _SHARED_DOC

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        **_SkMLPRegressor._parameter_constraints,
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="numba", threads=None, dtype=None, schedule=None):
        self.loss = loss
        _init(**{k: v for k, v in locals().items() if k not in ("__class__", "loss")})

    @staticmethod
    def _sklearn_class():
        return _SkMLPRegressor

    @staticmethod
    def _is_classifier():
        return False

    def _out_activation(self):
        return "identity"

    def _fit(self, X, y, sample_weight, incremental):
        if self.loss == "poisson" and not incremental:
            _legacy_check(self)
            self._validate_params()
            return self._fit_lbfgs(X, y, sample_weight)
        if self.loss == "poisson":
            raise ValueError("loss='poisson' has no compiled path in fastmnist, and "
                             "partial_fit does not fall back to scikit-learn; use fit")
        return super()._fit(X, y, sample_weight, incremental)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32, np.uint8),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @staticmethod
    def _val_targets(Y):
        return Y[:, 0] if Y.shape[1] == 1 else Y

    @staticmethod
    def _score_function(y, y_pred, sample_weight=None):
        return r2_score(y, y_pred, sample_weight=sample_weight)

    @staticmethod
    def _outputs_to_predictions(out):
        return out.ravel() if out.shape[1] == 1 else out

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X and y, continuing from the current weights and optimizer.

        Returns
        -------
        self : MLPRegressor
        """
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._outputs_to_predictions(self._forward(X))
