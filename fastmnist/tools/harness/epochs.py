"""Contenders as :class:`Epoch` objects: ``run()`` trains in place, ``params()`` reads back.

Each builder takes the initial weights ``[(W (d_in, d_out), b (d_out,)), ...]`` (copied or
used in place, as said), the row order of the epoch and the learning rate of every step, so
that any two contenders can start from the same point and be compared step for step.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...optim import init_state

#: mini-batch rows of the epoch workloads
BATCH = 128


@dataclass
class Epoch:
    """A contender: ``run()`` trains one epoch in place and returns the loss of every step;
    ``params()`` gives the current weights as NumPy [(W (d_in, d_out), b (d_out,)), ...]."""

    run: Callable[[], np.ndarray]
    params: Callable[[], list]


def copy_params(params):
    return [(W.copy(), b.copy()) for W, b in params]


def fastmnist_epoch(be, params, opt, data, y, order, lrs, batch_size=BATCH):
    """An Epoch of backend `be` (``backends.numpy_ref`` or ``backends.numba_cpu``) on
    `params` in place.

    `data` is ``be.prepare(X)``, done once outside; every call trains one more epoch with
    the same `order` and learning rates `lrs` (n_steps,), the optimizer state carried on.
    """
    state = init_state(params, opt)
    t = [0]

    def run():
        losses, _ = be.train_epoch(params, state, opt, data, y, order, batch_size, lrs, t[0])
        t[0] += len(losses)
        return losses
    return Epoch(run, lambda: params)


def user_data(X, dtype="float32"):
    """What a NumPy user trains on: uint8 pixels scaled to [0, 1] once, other inputs as
    floats of `dtype` (made outside any timer)."""
    X = np.asarray(X)
    dtype = np.dtype(dtype)
    return X.astype(dtype) / dtype.type(255) if X.dtype == np.uint8 else X.astype(dtype)


def numpy_user_epoch(params, opt, Xf, y, order, lrs, batch_size=BATCH):
    """An Epoch of plain NumPy, written as a user writes it, on `params` in place.

    Xf (n, d) float: :func:`user_data`. Per batch: gather the rows, forward with ``@`` and
    ``np.maximum``, a max-shifted softmax and the mean cross-entropy, the backward pass, and
    an SGD or Adam update (``opt.name``; Adam with bias correction, as PyTorch's).
    """
    y = np.asarray(y, dtype=np.int64)
    moments = [[(np.zeros_like(W), np.zeros_like(b)) for W, b in params] for _ in range(2)]
    t = [0]
    b1, b2, eps = opt.beta1, opt.beta2, opt.eps

    def step(x, yb, lr):
        acts = [x]
        for W, b in params[:-1]:
            x = np.maximum(x @ W + b, 0)
            acts.append(x)
        W, b = params[-1]
        z = x @ W + b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        rows = np.arange(len(yb))
        loss = float(np.mean(np.log(s) - z[rows, yb]))
        dz = e / s[:, None]
        dz[rows, yb] -= 1
        dz /= len(yb)
        grads = []
        for i in range(len(params) - 1, -1, -1):
            W, b = params[i]
            grads.append((acts[i].T @ dz, dz.sum(axis=0)))
            if i:
                dz = (dz @ W.T) * (acts[i] > 0)
        t[0] += 1
        for i, (dW, db) in enumerate(reversed(grads)):
            for j, (p, g) in enumerate(zip(params[i], (dW, db))):
                if opt.name == "sgd":
                    p -= lr * g
                    continue
                m, v = moments[0][i][j], moments[1][i][j]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= lr * (m / (1 - b1 ** t[0])) / (np.sqrt(v / (1 - b2 ** t[0])) + eps)
        return loss

    if opt.name not in ("sgd", "adam"):
        raise ValueError(f"the NumPy user loop does SGD or Adam, not {opt.name!r}")
    dtype = params[0][0].dtype

    def run():
        losses = np.empty(len(lrs))
        for s, lr in enumerate(lrs):
            rows = order[s * batch_size:(s + 1) * batch_size]
            losses[s] = step(Xf[rows], y[rows], dtype.type(lr))
        return losses
    return Epoch(run, lambda: params)


def fit_run(make_model, X, y, fit_kwargs):
    """A callable timing ``make_model().fit(X, y, **fit_kwargs)`` as a user calls it (a new
    model, its preparation included); returns (seconds per epoch, the fitted model)."""
    epochs = fit_kwargs.get("epochs", 5)

    def run():
        model = make_model()
        t0 = time.perf_counter()
        model.fit(X, y, progress=False, **fit_kwargs)
        return (time.perf_counter() - t0) / epochs, model
    return run


def notebook_iteration(X_cols, Y, alpha, start):
    """An Epoch of the seed notebook's own code (:func:`fastmnist.compat.gradient_descent`,
    ``backend="numpy"``): one full-batch iteration a call.

    X_cols (784, m) float64, scaled once as the notebook does (``X.T / 255.``); Y (m,);
    start: [(W1 (784, h), b1 (h,)), (W2 (h, c), b2 (c,))] in fastmnist's layout, turned into
    the notebook's (W1 (h, 784), b1 (h, 1), ...). ``run()`` returns no losses (an empty
    array): the notebook's loop computes none.
    """
    from ...integrations import compat
    (W1, b1), (W2, b2) = start
    state = [(W1.T.copy(), b1[:, None].copy(), W2.T.copy(), b2[:, None].copy())]

    def run():
        state[0] = compat.gradient_descent(X_cols, Y, alpha, 1, params=state[0],
                                           verbose=False)
        return np.empty(0)

    def params():
        W1, b1, W2, b2 = state[0]
        return [(W1.T, b1[:, 0]), (W2.T, b2[:, 0])]
    return Epoch(run, params)
