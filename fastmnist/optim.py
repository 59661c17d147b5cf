"""Optimizer settings and state, and learning-rate schedules (backend-independent).

The update rules themselves live in each backend (``apply_update`` in the NumPy reference,
fused into the epoch kernel in the Numba backend); this module only describes them.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

#: optimizer name -> code used inside compiled kernels
OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2, "nesterov": 3}

#: buffers of state each optimizer keeps per parameter array
STATE_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2, "nesterov": 1}

SCHEDULES = ("constant", "cosine", "onecycle", "linear", "step")


@dataclass(frozen=True)
class Optimizer:
    """An optimizer and its hyperparameters.

    ``sgd``: ``W -= lr * g``. ``momentum``: ``v = momentum * v + g; W -= lr * v``
    (PyTorch's convention). ``nesterov``: ``v = momentum * v + g; W -= lr * (g + momentum *
    v)`` (PyTorch's; for a constant lr the same steps as scikit-learn's Nesterov momentum).
    ``adam``: Kingma & Ba with bias correction. ``g`` includes
    the L2 term ``weight_decay * W`` (weights only, not biases).
    """

    name: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    #: Adam: add eps to sqrt(v) before the bias correction, as scikit-learn does
    #: (``lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``), instead of after it
    sklearn_eps: bool = False

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        for field in ("momentum", "beta1", "beta2"):
            v = getattr(self, field)
            if not (0.0 <= v < 1.0 or field == "momentum" and v == 1.0):
                raise InputError(f"{field} must be in [0, 1), got {v}")
        if not self.eps > 0 or not self.weight_decay >= 0:
            raise InputError("eps must be > 0 and weight_decay >= 0")

    def eps_at(self, t):
        """Adam's eps as added to ``sqrt(v / (1 - beta2^t))`` at the 1-based steps t
        (array or int): eps, or eps / sqrt(1 - beta2^t) with `sklearn_eps` (the same step)."""
        if not self.sklearn_eps:
            return self.eps + 0 * np.asarray(t, dtype=np.float64)
        return self.eps / np.sqrt(1 - self.beta2 ** np.asarray(t, dtype=np.float64))

    @property
    def code(self):
        """Integer code of the optimizer, for compiled kernels."""
        return OPTIMIZERS[self.name]


#: optimizer steps between two flushes of the weights and optimizer state
FLUSH_EVERY = 8


def flush_threshold(opt, dtype):
    """Magnitude below which weights and optimizer state are flushed to 0 every FLUSH_EVERY
    steps, so that they never hold a subnormal float.

    A subnormal costs an Intel core a microcode assist of about 100 cycles per operation, and
    state decays towards zero by construction: Adam's first moment of a pixel that is rarely
    lit shrinks by beta1 a step (fast98 left 14,686 of W1's moments subnormal). A flush every
    step costs a third of the update sweep; one every FLUSH_EVERY steps, at the dtype's
    smallest normal number divided by the largest shrink FLUSH_EVERY steps of decay can make
    (rate ** FLUSH_EVERY, rate the smallest nonzero of beta1, beta2 or momentum, at least
    1/2), catches every value before it decays into the subnormal range: a value kept at a
    flush is at least the threshold, and FLUSH_EVERY - 1 steps of decay leave it above the
    smallest normal, so no step, and no end of a run, finds a subnormal made by decay. The
    threshold is about 1e-36 in float32 and 1e-306 in float64: no trained value is that small.
    """
    rates = {"sgd": (), "momentum": (opt.momentum,), "nesterov": (opt.momentum,),
             "adam": (opt.beta1, opt.beta2)}[opt.name]
    rate = max(min([r for r in rates if r > 0], default=1.0), 0.5)
    return float(np.finfo(dtype).tiny) / rate ** FLUSH_EVERY


def grad_flush_threshold(opt, dtype):
    """Magnitude below which Adam takes a gradient entry as 0, so that its square, scaled by
    1 - beta2, is never subnormal (nor an underflow to 0, which costs the same assist).

    The state's flush (:func:`flush_threshold`) cannot catch these: the product is made and
    used inside one step. On raw uint8 features (scikit-learn's estimator uses them as given)
    a confident model's gradients fall to 1e-20 and below, and a 784-100-10 fit's steps slowed
    from 0.37 to 0.78 ms over 10 epochs on an Intel Xeon (0.45 to 0.54 ms with this flush,
    as with the CPU's flush-to-zero mode). The threshold, sqrt(tiny / (1 - beta2)) (1 - beta2
    taken as at least 1e-6), is about 3e-18 in float32 and 5e-153 in float64: Adam's step for
    such a gradient is below lr * 1e-9 (eps 1e-8 in the denominator), so the flush changes no
    result beyond that.
    """
    rate = max(1.0 - opt.beta2, 1e-6)
    return float(np.sqrt(float(np.finfo(dtype).tiny) / rate))


def flush_small(params, state, opt):
    """Set every entry of the weights and optimizer state below :func:`flush_threshold` in
    magnitude to 0, in place (NaN kept). ``state`` as from :func:`init_state`."""
    for i, pair in enumerate(params):
        for j, p in enumerate(pair):
            thr = flush_threshold(opt, p.dtype)
            for a in (p, *(slot[i][j] for slot in state)):
                np.putmask(a, np.abs(a) < thr, 0)


def flush_steps(t0, n_steps):
    """Which of the steps t0 + 1 .. t0 + n_steps end with a flush (bool (n_steps,)): every
    FLUSH_EVERY-th of the run, counted from its start, so that the schedule, and with it every
    bit of the result, does not depend on how the run is cut into calls."""
    return (t0 + 1 + np.arange(n_steps)) % FLUSH_EVERY == 0


def init_state(params, opt):
    """Zeroed optimizer state: per layer a list of ``STATE_SLOTS`` pairs ``(sW, sb)``.

    Returned as a list (over slots) of lists (over layers) of ``[sW, sb]`` arrays shaped like
    the parameters: ``state[slot][layer] = (sW (d_in, d_out), sb (d_out,))``.
    """
    return [[(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
            for _ in range(STATE_SLOTS[opt.name])]


def lr_schedule(name, lr, total_steps, *, warmup_frac=0.3, div_factor=25.0,
                final_div_factor=1e4, step_size=None, gamma=0.1):
    """Per-step learning rates for a whole run.

    Parameters
    ----------
    name : {"constant", "cosine", "onecycle", "linear", "step"} or None
        ``cosine`` anneals from `lr` to 0; ``onecycle`` is PyTorch's OneCycleLR (cosine
        warm-up from ``lr / div_factor`` over `warmup_frac` of the steps, then cosine down
        to ``lr / (div_factor * final_div_factor)``); ``linear`` decays linearly to 0;
        ``step`` multiplies by `gamma` every `step_size` steps (default: a third of the run).
    lr : float
        Base (peak) learning rate.
    total_steps : int
        Number of optimizer steps in the run.

    Returns
    -------
    lrs : ndarray of float64, shape (total_steps,)
    """
    if name is None:
        name = "constant"
    if name not in SCHEDULES:
        raise InputError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a positive finite number, got {lr!r}")
    t = np.arange(total_steps, dtype=np.float64)
    n = max(total_steps - 1, 1)
    if name == "constant":
        return np.full(total_steps, float(lr))
    if name == "cosine":
        return lr * 0.5 * (1.0 + np.cos(np.pi * t / n))
    if name == "linear":
        return lr * (1.0 - t / (n + 1))
    if name == "step":
        size = step_size or max(total_steps // 3, 1)
        return lr * gamma ** (t // size)
    # onecycle, as torch.optim.lr_scheduler.OneCycleLR(anneal_strategy="cos")
    lo, hi = lr / div_factor, lr
    end = lo / final_div_factor
    up = max(float(warmup_frac * total_steps) - 1.0, 1.0)
    out = np.empty(total_steps)
    rising = t <= up
    out[rising] = hi + (lo - hi) * 0.5 * (1.0 + np.cos(np.pi * t[rising] / up))
    down = max(n - up, 1.0)
    fall = (t[~rising] - up) / down
    out[~rising] = end + (hi - end) * 0.5 * (1.0 + np.cos(np.pi * fall))
    return out
