"""Backends: interchangeable kernel modules with identical names and semantics.

The protocol (every backend defines these; ``x`` is uint8, scaled by 1/255 on the fly
unless :func:`prepare` was given another scale, or float of the parameters' dtype, taken as
already scaled; hidden layers use ``activation``, ReLU by default)::

    relu(z) -> a                                   # z, a (n, d)
    activate(z, activation) -> a                   # any hidden activation, by name or code
    activate_backward(da, a, activation) -> dz     # dz = da * f'(z), from the output a
    softmax(z) -> p                                # row-wise, numerically stable; z, p (n, C)
    linear(x, W, b) -> x @ W + b                   # x (n, d_in), W (d_in, d_out), b (d_out,)
    forward(params, x, activation="relu") -> probs # params: list of (W, b); probs (n, C)
    loss_and_grads(params, x, y, activation="relu") -> (loss, grads)
                                                   # mean cross-entropy; grads: [(dW, db)]
    train_step(params, x, y, lr) -> loss           # forward + backward + SGD update, in place

and, for the training loop (:mod:`fastmnist.train`)::

    prepare(x, scale=None) -> data                 # any per-dataset preprocessing, done once;
                                                   # scale: the factor of uint8 x (None: 1/255)
    train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0, activation="relu")
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

#: hidden-layer activation name -> integer code passed to the kernels (ReLU is 0: its fused
#: path is the default and stays as it was)
ACTIVATIONS = {"relu": 0, "tanh": 1, "logistic": 2, "identity": 3}


#: output layer name -> integer code passed to the kernels: softmax against integer labels
#: (cross-entropy), logistic against 0/1 target rows (binary cross-entropy summed over the
#: outputs), identity against real targets (half the squared error, averaged over outputs)
OUTPUTS = {"softmax": 0, "logistic": 1, "identity": 2}


def output_code(output):
    """The integer code of the output layer `output` (a name of OUTPUTS)."""
    if isinstance(output, str) and output in OUTPUTS:
        return OUTPUTS[output]
    raise InputError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")


def check_number(value, name, what, upper=None, none_is_zero=True):
    """`value` as a float in [0, upper) ([0, inf) when upper is None), else an InputError
    "`name` must be `what`, got ..."; a bool is refused, None is 0 when none_is_zero."""
    try:
        v = float(0.0 if value is None and none_is_zero else value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be {what}, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= v < (float("inf") if upper is None else upper):
        raise InputError(f"{name} must be {what}, got {value!r}")
    return v


def check_smoothing(label_smoothing, head=0):
    """Label smoothing as a float in [0, 1), for the softmax output (head code 0) only."""
    eps = check_number(label_smoothing, "label_smoothing", "a number in [0, 1)", upper=1.0,
                       none_is_zero=False)
    if eps and head != 0:
        raise InputError("label_smoothing applies to the softmax output only")
    return eps


def check_max_norm(max_norm):
    """The max-norm constraint as a float >= 0 (0: none)."""
    return check_number(max_norm, "max_norm", "a finite number >= 0")


def check_ema(decay):
    """The decay of the weights' moving average as a float in [0, 1) (0: none)."""
    return check_number(decay, "ema", "a decay in [0, 1)", upper=1.0)


def activation_code(activation):
    """The integer code of `activation` (a name of ACTIVATIONS, or already a valid code)."""
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    if (not isinstance(activation, bool) and isinstance(activation, int)
            and activation in ACTIVATIONS.values()):
        return int(activation)
    raise InputError(f"unknown activation {activation!r}; choose one of "
                     f"{', '.join(ACTIVATIONS)}")


_loaded = {}


def check_name(name):
    """InputError unless `name` names a backend; imports nothing (the Numba backend's import
    costs about a second, its self-test compiling, and a first run trains on NumPy)."""
    if not isinstance(name, str) or name not in _MODULES:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return name


def get(name):
    """Return the backend module called `name` ("numpy" or "numba")."""
    module = _loaded.get(name) if isinstance(name, str) else None
    if module is not None:
        return module
    module = _loaded[name] = import_module(_MODULES[check_name(name)])
    return module


#: the Numba cache's public face (:mod:`._jit`'s), for :mod:`fastmnist.warmup`: looked up on
#: each access, so that importing this package does not import Numba
_CACHE_API = ("CACHE", "cache_folder", "cache_key")


def __getattr__(name):
    if name in _CACHE_API:
        from . import _jit
        return getattr(_jit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
