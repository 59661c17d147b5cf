"""The seed notebook's functional API: same names, same shapes, same numbers.

A user of the teaching notebook changes one import line::

    from fastmnist.compat import *          # instead of the notebook's own definitions
    W1, b1, W2, b2 = gradient_descent(X_train, Y_train, 0.10, 500)
    W1, b1, W2, b2 = gradient_descent(X_train, Y_train, 0.10, 500, backend="numba")  # faster

Shapes, as in the notebook (``d`` = 784 pixels, ``h`` = 10 hidden units, ``c`` = 10 classes,
``m`` examples, one per *column*):

- ``X`` (d, m) float, pixels scaled to [0, 1] (``data_train[1:n].T / 255.``); ``Y`` (m,) labels
- ``W1`` (h, d), ``b1`` (h, 1), ``W2`` (c, h), ``b2`` (c, 1)
- ``Z1``, ``A1`` (h, m); ``Z2``, ``A2`` (c, m)

The notebook's quirks are reproduced on purpose, so that results match it:

- **Scalar bias gradients.** ``db1 = 1 / m * np.sum(dZ1)`` sums ``dZ1`` over the whole matrix
  (units *and* examples), and the update adds that one scalar to every bias. ``db2`` is in fact
  always ~0: each column of ``A2 - one_hot(Y)`` sums to 1 - 1 = 0. (:mod:`fastmnist` itself
  uses per-unit bias gradients; see :func:`fastmnist.recipes.seed`.)
- **Unshifted softmax.** ``np.exp(Z) / sum(np.exp(Z))`` does not subtract the column max, so
  logits above ~709 overflow to ``inf`` and give ``nan`` probabilities (with a RuntimeWarning).
  It is kept identical; with the notebook's small weights it never happens.
- **one_hot sizes by the labels.** ``one_hot(Y)`` has ``Y.max() + 1`` rows, not 10: if the
  largest digit is missing from ``Y`` (a small sample), ``A2 - one_hot(Y)`` fails to broadcast.
- **Printing.** :func:`gradient_descent` prints the iteration and the training accuracy every
  10 iterations (the accuracy of the forward pass *before* that iteration's update), and
  :func:`get_accuracy` prints its two arguments. ``verbose=False`` silences both.
- **Global RNG.** :func:`init_params` draws from NumPy's global generator (``np.random.rand``),
  so ``np.random.seed(s)`` makes runs repeatable, as in the notebook.

The one difference: the notebook's :func:`backward_prop` reads a global ``m``; here ``m`` is
``X.shape[1]``, the number of examples in ``X``. (The notebook sets ``m`` from the whole CSV,
42,000 rows, before holding out 1,000 for validation, so its gradients are scaled by 1/42,000
while it trains on 41,000 examples; pass ``m=42000`` to reproduce that exactly.)

``backend="numba"`` runs the same math, quirks included, through a compiled full-batch loop
(:func:`fastmnist.backends.notebook.gd_steps`): the input columns are stored once as sparse
(about 81% of MNIST pixels are 0), the forward and backward passes skip zero pixels, examples
are split across threads with a gradient buffer per thread, and 10 iterations run per compiled
call. It does not use the backend protocol, whose math (row layout, per-unit bias gradients,
shifted softmax) is not the notebook's. Results equal the NumPy path up to floating-point
rounding (the sums run in another order) while the weights are finite.
"""

import numpy as np

from ..backends.notebook import columns_to_csr, gd_steps
from ..backends.numba_cpu import n_threads, prepare
from ..errors import InputError

__all__ = [
    "init_params", "ReLU", "softmax", "forward_prop", "ReLU_deriv", "one_hot", "backward_prop",
    "update_params", "get_predictions", "get_accuracy", "gradient_descent",
]

BACKENDS = ("numpy", "numba")

#: iterations between progress lines, as in the notebook
PRINT_EVERY = 10


def init_params():
    """Weights and biases of a 784-10-10 network, each from U(-0.5, 0.5) (global NumPy RNG).

    Returns
    -------
    W1 : ndarray (10, 784)
    b1 : ndarray (10, 1)
    W2 : ndarray (10, 10)
    b2 : ndarray (10, 1)
    """
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1) - 0.5
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1) - 0.5
    return W1, b1, W2, b2


def ReLU(Z):
    """Elementwise max(Z, 0)."""
    return np.maximum(Z, 0)


def ReLU_deriv(Z):
    """Boolean mask Z > 0: the derivative of ReLU, as the notebook computes it."""
    return Z > 0


def softmax(Z):
    """Column-wise softmax of Z (c, m), *unshifted*: overflows to nan for logits above ~709."""
    E = np.exp(Z)
    return E / sum(E)


def forward_prop(W1, b1, W2, b2, X):
    """Forward pass.

    Parameters
    ----------
    W1 : ndarray (h, d)
    b1 : ndarray (h, 1)
    W2 : ndarray (c, h)
    b2 : ndarray (c, 1)
    X : ndarray (d, m), one example per column, scaled to [0, 1]

    Returns
    -------
    Z1, A1 : ndarray (h, m)
        Hidden pre-activations and ReLU activations.
    Z2, A2 : ndarray (c, m)
        Logits and softmax probabilities.
    """
    Z1 = W1.dot(X) + b1
    A1 = ReLU(Z1)
    Z2 = W2.dot(A1) + b2
    A2 = softmax(Z2)
    return Z1, A1, Z2, A2


def one_hot(Y):
    """One-hot matrix (Y.max() + 1, m) of the labels Y (m,): one column per example."""
    one_hot_Y = np.zeros((Y.size, Y.max() + 1))
    one_hot_Y[np.arange(Y.size), Y] = 1
    return one_hot_Y.T


def backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y, m=None):
    """Gradients of the mean cross-entropy, with the notebook's scalar bias gradients.

    Parameters
    ----------
    Z1, A1 : ndarray (h, m)
    Z2, A2 : ndarray (c, m)
    W1 : ndarray (h, d)
        Unused, as in the notebook; kept for its signature.
    W2 : ndarray (c, h)
    X : ndarray (d, m)
    Y : ndarray (m,) of integer labels
    m : int, optional
        The divisor, the notebook's global ``m``; defaults to ``X.shape[1]``.

    Returns
    -------
    dW1 : ndarray (h, d)
    db1 : float
        ``np.sum(dZ1) / m`` over all units and examples (the notebook's quirk).
    dW2 : ndarray (c, h)
    db2 : float
        ``np.sum(dZ2) / m``, ~0 since every column of ``A2 - one_hot(Y)`` sums to 0.
    """
    m = X.shape[1] if m is None else m
    one_hot_Y = one_hot(Y)
    dZ2 = A2 - one_hot_Y
    dW2 = 1 / m * dZ2.dot(A1.T)
    db2 = 1 / m * np.sum(dZ2)
    dZ1 = W2.T.dot(dZ2) * ReLU_deriv(Z1)
    dW1 = 1 / m * dZ1.dot(X.T)
    db1 = 1 / m * np.sum(dZ1)
    return dW1, db1, dW2, db2


def update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha):
    """One gradient-descent step; returns new arrays ``W - alpha * dW`` (inputs untouched)."""
    W1 = W1 - alpha * dW1
    b1 = b1 - alpha * db1
    W2 = W2 - alpha * dW2
    b2 = b2 - alpha * db2
    return W1, b1, W2, b2


def get_predictions(A2):
    """Predicted labels (m,): the argmax of each column of A2 (c, m)."""
    return np.argmax(A2, 0)


def get_accuracy(predictions, Y, verbose=True):
    """Fraction of predictions (m,) equal to Y (m,); prints both first, unless not `verbose`."""
    if verbose:
        print(predictions, Y)
    return np.sum(predictions == Y) / Y.size


def gradient_descent(X, Y, alpha, iterations, *, backend="numpy", params=None, m=None,
                     verbose=True):
    """Full-batch gradient descent from :func:`init_params`, exactly as the notebook runs it.

    Parameters
    ----------
    X : ndarray (d, m)
        Training examples, one per column, scaled to [0, 1].
    Y : ndarray (m,)
        Integer labels.
    alpha : float
        Learning rate.
    iterations : int
        Gradient steps.
    backend : {"numpy", "numba"}
        ``numpy`` runs the notebook's own code; ``numba`` the same math compiled (see the
        module docstring); the two agree to rounding.
    params : tuple (W1, b1, W2, b2), optional
        Initial weights (not modified); default :func:`init_params` (global NumPy RNG).
    m : int, optional
        The notebook's global ``m`` (gradient divisor); defaults to ``X.shape[1]``.
    verbose : bool
        Print ``Iteration:`` and the training accuracy every 10 iterations, like the notebook.

    Returns
    -------
    W1 : ndarray (h, d)
    b1 : ndarray (h, 1)
    W2 : ndarray (c, h)
    b2 : ndarray (c, 1)
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    W1, b1, W2, b2 = init_params() if params is None else params
    _check_shapes(X, Y, W1, b1, W2, b2)
    if backend == "numba":
        return _gradient_descent_numba(X, Y, alpha, iterations, (W1, b1, W2, b2), m, verbose)
    for i in range(iterations):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y, m=m)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha)
        if verbose and i % PRINT_EVERY == 0:
            print("Iteration: ", i)
            predictions = get_predictions(A2)
            print(get_accuracy(predictions, Y))
    return W1, b1, W2, b2


def _check_shapes(X, Y, W1, b1, W2, b2):
    """Raise InputError unless X (d, m), Y (m,), W1 (h, d), b1 (h, 1), W2 (c, h), b2 (c, 1)."""
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 1 or Y.shape[0] != X.shape[1]:
        raise InputError(f"need X (d, m) and Y (m,), one example per column of X; got X "
                         f"{X.shape} and Y {Y.shape} (transpose X if its rows are examples)")
    h, d = np.shape(W1)
    c = np.shape(W2)[0]
    want = {"W1": (h, X.shape[0]), "b1": (h, 1), "W2": (c, h), "b2": (c, 1)}
    for name, arr in zip(want, (W1, b1, W2, b2)):
        if np.shape(arr) != want[name]:
            raise InputError(f"{name} has shape {np.shape(arr)}; expected {want[name]}")


# ---- backend="numba": the same loop, compiled ----------------------------------------------

def _gradient_descent_numba(X, Y, alpha, iterations, params, m, verbose):
    """:func:`gradient_descent` through :func:`fastmnist.backends.notebook.gd_steps`, printing
    every 10 iterations."""
    W1, b1, W2, b2 = (np.array(p, dtype=np.float64) for p in params)  # copies: caller's intact
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y)
    n_examples = X.shape[1]
    m = n_examples if m is None else m
    # the notebook's dZ2 = A2 - one_hot(Y), broadcasting (and failing) the same way
    onehot = np.ascontiguousarray(np.broadcast_to(one_hot(Y), (W2.shape[0], n_examples)).T)
    if X.flags.f_contiguous and not X.flags.c_contiguous:
        # X is the transpose of a C array (X_train.T / 255, as the notebook builds it): its
        # examples are contiguous rows of X.T, so build the sparse copy row by row, in parallel
        rows = prepare(X.T)  # the Numba backend's CSR of the rows
        indptr, indices, values = rows.indptr, rows.indices, rows.values
    else:
        indptr, indices, values = columns_to_csr(X)
    W1T = np.ascontiguousarray(W1.T)
    b1, b2 = b1.ravel(), b2.ravel()
    preds = np.zeros(n_examples, dtype=np.int64)
    threads = max(1, min(n_threads(), n_examples))
    for i in range(0, iterations, PRINT_EVERY):
        n_steps = min(PRINT_EVERY, iterations - i)
        gd_steps((W1T, b1, W2, b2), (indptr, indices, values), onehot, float(alpha), 1.0 / m,
                 n_steps, verbose, threads, preds)
        if verbose:
            print("Iteration: ", i)
            print(get_accuracy(preds, Y))
    return np.ascontiguousarray(W1T.T), b1.reshape(-1, 1), W2, b2.reshape(-1, 1)
