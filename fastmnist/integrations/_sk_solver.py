"""scikit-learn's stochastic solvers ("sgd", "adam") on fastmnist's backends.

This module reproduces ``BaseMultilayerPerceptron._fit_stochastic`` of scikit-learn 1.9 step
for step: the same initialization (drawn from the same random state, in the same order), the
same batches (``shuffle`` of the sample indices every epoch), the same update rules, the same
L2 term (``alpha * W / n_batch``) and the same stopping and learning-rate rules. Each epoch is
one call of the backend's ``train_epoch``, so the steps themselves run in compiled code.

Differences that remain, by design (see README, "scikit-learn"):

* The L2 part of each ``loss_curve_`` entry uses the weights' squared norm interpolated
  linearly between the start and the end of the epoch, not the norm before every step.
* Losses are exact log-sum-exp and log-sigmoid values, not probabilities clipped to
  ``[eps, 1 - eps]`` first.
"""

import contextlib
import math
import time

import numpy as np

from ..optim import Optimizer, init_state

#: scikit-learn's lower bound of the "adaptive" learning rate: below it, training stops
_ADAPTIVE_MIN_LR = 1e-6


def glorot_init(random_state, sizes, activation, dtype):
    """scikit-learn's initialization: per layer W (d_in, d_out) then b (d_out,), both
    U(-bound, bound) with bound = sqrt(6 / (d_in + d_out)) (2 instead of 6 for "logistic"),
    drawn in float64 from `random_state` (a RandomState), cast to `dtype`."""
    factor = 2.0 if activation == "logistic" else 6.0
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (d_in + d_out))
        W = random_state.uniform(-bound, bound, (d_in, d_out))
        b = random_state.uniform(-bound, bound, d_out)
        params.append((np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(b, dtype=dtype)))
    return params


class Solver:
    """Optimizer, its state and learning rate, kept between ``partial_fit`` calls.

    ``solver="sgd"`` runs Nesterov or classical momentum. scikit-learn keeps the velocity
    ``u = momentum * u - lr * g``; the kernels keep PyTorch's ``v = momentum * v + g`` and
    step ``-lr * v``, which is ``u = -lr * v``: the same steps while lr holds, and
    :meth:`set_lr` rescales v when lr changes so that u carries over exactly.
    """

    def __init__(self, est, params):
        if est.solver == "adam":
            self.opt = Optimizer("adam", beta1=est.beta_1, beta2=est.beta_2, eps=est.epsilon,
                                 sklearn_eps=True)
            self.schedule = "constant"  # scikit-learn's Adam ignores learning_rate
        else:
            name = "nesterov" if est.nesterovs_momentum else "momentum"
            self.opt = Optimizer(name, momentum=est.momentum)
            self.schedule = est.learning_rate
        self.state = init_state(params, self.opt)
        self.lr_init = float(est.learning_rate_init)
        self.lr = self.lr_init
        self.power_t = float(est.power_t)
        self.steps = 0  # optimizer steps taken (Adam's t)

    def set_lr(self, lr):
        """Change the learning rate, keeping scikit-learn's velocity -lr * v unchanged."""
        if self.opt.name != "adam" and lr != self.lr:
            for pair in self.state[0] if self.state else ():
                for a in pair:
                    a *= a.dtype.type(self.lr / lr)
        self.lr = lr

    def iteration_ends(self, samples_seen):
        """scikit-learn's ``iteration_ends``: "invscaling" sets lr_init / (t + 1)^power_t."""
        if self.schedule == "invscaling":
            self.set_lr(self.lr_init / (samples_seen + 1) ** self.power_t)

    def trigger_stopping(self, msg, verbose):
        """scikit-learn's ``trigger_stopping``: True to stop; "adaptive" divides lr by 5
        instead, until it is at most 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.lr <= _ADAPTIVE_MIN_LR:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.set_lr(self.lr / 5.0)
        if verbose:
            print(f"{msg} Setting learning rate to {self.lr:f}")
        return False


def squared_norm(params):
    """Sum of the squared weights (biases excluded), in float64.

    Not ``np.dot``: on vectors this long, OpenBLAS runs it on its own threads, which then
    spin for a while and take the cores from the next epoch's threads (its first chunk ran
    2x slower on a 2-vCPU Intel Xeon, some steps 10x)."""
    return sum(float(np.square(W, dtype=np.float64).sum()) for W, _ in params)


def run_epoch(be, solver, params, data, Y, order, batch_size, *, activation, output,
              sample_weight, alpha, lrs=None, governor=None):
    """One epoch over the rows `order` (m,) in batches: one ``train_epoch`` call, or one per
    chunk of steps that `governor` (a :class:`fastmnist.governor.Governor`) plans, each on
    the thread count it chooses (the weights do not depend on it).

    Returns scikit-learn's epoch loss: the mean over the rows of each batch's loss (weighted
    mean with `sample_weight`) plus its L2 term ``0.5 * alpha * |W|^2 / n_batch``. `lrs`, if
    given, are per-step learning rates (fastmnist's ``schedule``) instead of ``solver.lr``.
    Raises ValueError when a step gives a non-finite loss (the weights are those before it).
    """
    m = len(order)
    n_steps = math.ceil(m / batch_size)
    sq_start = squared_norm(params) if alpha else 0.0
    if lrs is None:
        lrs = np.full(n_steps, solver.lr)
    parts, step = [], 0
    while step < n_steps:
        threads, chunk = governor.plan() if governor else (None, n_steps)
        stop = min(step + chunk, n_steps)
        t_start = time.perf_counter()
        with be.threads(threads) if governor else contextlib.nullcontext():
            part, _ = be.train_epoch(params, solver.state, solver.opt, data, Y,
                                     order[step * batch_size:stop * batch_size], batch_size,
                                     lrs[step:stop], solver.steps, activation=activation,
                                     output=output, sample_weight=sample_weight, l2=alpha)
        if governor:
            governor.record(threads, time.perf_counter() - t_start, len(part))
        parts.append(part)
        if len(part) < stop - step or not np.isfinite(part).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.")
        solver.steps += stop - step
        step = stop
    losses = np.concatenate(parts)
    sizes = np.minimum(batch_size, m - np.arange(n_steps) * batch_size)
    total = float(np.dot(losses, sizes))
    if alpha:
        sq_end = squared_norm(params)
        norms = sq_start + (sq_end - sq_start) * np.arange(n_steps) / n_steps
        if sample_weight is None:
            wsum = sizes.astype(np.float64)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)[order]
            wsum = np.add.reduceat(w, np.arange(0, m, batch_size))
        total += float(np.sum(0.5 * alpha * norms / wsum * sizes))
    return total / m
