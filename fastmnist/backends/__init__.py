"""Backends: interchangeable kernel modules with identical names and semantics.

The protocol (every backend defines these; ``x`` is uint8, scaled by 1/255 on the fly,
or float of the parameters' dtype, taken as already scaled)::

    relu(z) -> a                                   # z, a (n, d)
    softmax(z) -> p                                # row-wise, numerically stable; z, p (n, C)
    linear(x, W, b) -> x @ W + b                   # x (n, d_in), W (d_in, d_out), b (d_out,)
    forward(params, x) -> probs                    # params: list of (W, b); probs (n, C)
    loss_and_grads(params, x, y) -> (loss, grads)  # mean cross-entropy; grads: list of (dW, db)
    train_step(params, x, y, lr) -> loss           # forward + backward + SGD update, in place

and, for the training loop (:mod:`fastmnist.train`)::

    prepare(x) -> data                             # any per-dataset preprocessing, done once
    train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0)
        -> (losses, n_correct)                     # runs len(lrs) steps over order, in place

``state`` is the optimizer state of :func:`fastmnist.optim.init_state` and ``opt`` an
:class:`fastmnist.optim.Optimizer`. ``losses`` holds one mean loss per step run; the
epoch stops early, before updating, at the first non-finite loss.
"""

from importlib import import_module

from ..errors import InputError

#: backend name -> module path
_MODULES = {"numpy": "fastmnist.backends.numpy_ref", "numba": "fastmnist.backends.numba_cpu"}

NAMES = tuple(_MODULES)


def get(name):
    """Return the backend module called `name` ("numpy" or "numba")."""
    if not isinstance(name, str) or name not in _MODULES:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return import_module(_MODULES[name])
