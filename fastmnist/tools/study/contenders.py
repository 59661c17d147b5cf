"""Contenders: callables that each run a fixed piece of training (a batch size, a backend, a
dtype, a number of threads), built once so that timing them measures only the work."""

import numpy as np

from ...backends import numba_cpu
from ...model import init_params
from ...optim import Optimizer, init_state


def fresh_state(sizes, dtype, init="he", optimizer="sgd"):
    params = init_params(list(sizes), np.dtype(dtype), init, np.random.default_rng(0))
    opt = Optimizer(optimizer)
    return params, opt, init_state(params, opt)


def epoch_fn(be, data, y, order, batch_size, sizes, dtype, lr=0.05, chunk=None):
    """A callable running SGD over `order` with backend module `be`, `chunk` steps per call
    of ``be.train_epoch`` (None: all steps in one call); returns (losses, n_correct)."""
    params, opt, state = fresh_state(sizes, dtype)
    steps = -(-len(order) // batch_size)
    lrs = np.full(steps, lr)
    if chunk is None or chunk >= steps:
        def run():
            return be.train_epoch(params, state, opt, data, y, order, batch_size, lrs, 0)
        return run
    losses = np.empty(steps)

    def run_chunked():
        correct = 0
        for s in range(0, steps, chunk):
            part, c = be.train_epoch(params, state, opt, data, y,
                                     order[s * batch_size:(s + chunk) * batch_size], batch_size,
                                     lrs[s:s + chunk], s)
            losses[s:s + len(part)] = part
            correct += c
        return losses, correct
    return run_chunked


def step_fn(X, y, order, batch_size, sizes, dtype, lr=0.05):
    """A callable calling the protocol's ``numba_cpu.train_step`` once per batch (gathering
    the batch's rows in NumPy first), as a straight port of a NumPy loop would."""
    params, _, _ = fresh_state(sizes, dtype)
    steps = -(-len(order) // batch_size)
    losses = np.empty(steps)

    def run():
        for s in range(steps):
            rows = order[s * batch_size:(s + 1) * batch_size]
            losses[s] = numba_cpu.train_step(params, X[rows], y[rows], lr)
        return losses, 0
    return run


def torch_fn(X, y, order, batch_size, sizes, dtype, threads, lr=0.05):
    """A callable running SGD over `order` in PyTorch
    (:func:`fastmnist.tools.harness.peers.torch_epoch`) from the same initial weights as the
    other contenders."""
    from ..harness.peers import torch_data, torch_epoch
    params, _, _ = fresh_state(sizes, dtype)
    return torch_epoch(params, torch_data(X, y), order, lr, "sgd", batch_size=batch_size,
                       threads=threads).run


def threaded(fn, backend, n, blas=None):
    """`fn` run with `n` threads of its backend."""
    if backend == "numba":
        def run():
            with numba_cpu.threads(n):
                return fn()
    elif backend == "torch":
        import torch

        def run():
            torch.set_num_threads(n)
            return fn()
    elif backend == "numpy" and blas is not None:
        def run():
            with blas.limit(limits=n, user_api="blas"):
                return fn()
    else:
        return fn
    return run


def blas_controller():
    """threadpoolctl's controller of NumPy's BLAS threads, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()
