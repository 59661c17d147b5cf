"""The Numba backend's optimizer sweep (``kernels.update_range``) against the NumPy backend's
step (``numpy_ref.apply_update``), for every optimizer, dtype and count of gradient rows, and
its speed with one row against two."""

import time

import numpy as np
import pytest
from tolerances import tol

from fastmnist.backends import numpy_ref as ref
from fastmnist.backends.kernels import update_range
from fastmnist.backends.numba_cpu import _hyper
from fastmnist.optim import Optimizer

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]


def _case(dtype, T, n=1000, seed=0):
    """flat, s1, s2 (n + 10,) and G (T, n + 10): random, Adam's second moment positive."""
    rng = np.random.default_rng(seed)
    P = n + 10
    flat = (rng.standard_normal(P) * 0.1).astype(dtype)
    s1 = (rng.standard_normal(P) * 0.01).astype(dtype)
    s2 = (rng.random(P) * 1e-4).astype(dtype)
    G = (rng.standard_normal((T, P)) * 0.01).astype(dtype)
    G[:, ::97] = 0  # some exact zeros, as a sparse batch leaves
    return flat, s1, s2, G


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("T, own", [(1, 0), (2, 0), (2, 1), (3, 0)])
def test_update_range_matches_the_reference_step(dtype, optimizer, T, own):
    """The step on flat[lo:hi] from the gradient summed over the T rows, weight decay
    included; the rows it reads cleared (T = 2: the owned one only), nothing outside the
    range touched."""
    opt = Optimizer(optimizer, weight_decay=1e-3)
    t, lr, lo, hi = 7, 0.01, 5, 1005
    flat, s1, s2, G = _case(dtype, T)
    g = G[:, lo:hi].sum(0) if T != 2 else G[own, lo:hi] + G[1 - own, lo:hi]
    want = [flat[lo:hi].copy(), s1[lo:hi].copy(), s2[lo:hi].copy()]
    before = [a.copy() for a in (flat, s1, s2)]
    state = ([[want[1], np.zeros(0, dtype)]], [[want[2], np.zeros(0, dtype)]])
    ref.apply_update([(want[0], np.zeros(0, dtype))], [(g, np.zeros(0, dtype))], state, opt,
                     lr, t)
    dt = np.dtype(dtype).type
    hp = _hyper(opt, dtype)
    hp[5] = dt(opt.eps_at(t))
    other = G[1 - own].copy() if T == 2 else None
    rule = (opt.code, dt(lr), hp, dt(opt.weight_decay), dt(1 - opt.beta1 ** t),
            dt(1 - opt.beta2 ** t), dt(0))
    update_range((flat, s1, s2), rule, G, T, lo, hi, own)
    rtol, atol = tol(dtype)
    for got, w, b in zip((flat, s1, s2), want, before):
        np.testing.assert_allclose(got[lo:hi], w, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(got[:lo], b[:lo])
        np.testing.assert_array_equal(got[hi:], b[hi:])
    if T == 2:
        assert not G[own, lo:hi].any()
        np.testing.assert_array_equal(G[1 - own], other)
    else:
        assert not G[:, lo:hi].any()


def _seconds(fn, calls=10):
    """Seconds a call of fn takes, over `calls` calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def test_one_gradient_row_is_not_slower_than_two():
    """The sweep with one gradient row (one part, or the split by units) vectorizes like the
    sweep that adds two rows. With one loop for both, the single row's g1 was g0 itself, LLVM's
    run-time alias check failed, and Adam ran scalar: 3-4x the two rows' time (Intel Xeon).
    Fastest of 9 rounds each, interleaved; the bound leaves room for a noisy machine."""
    n = 200_000
    opt = Optimizer("adam")
    hp = _hyper(opt, np.float32)
    rule = (opt.code, np.float32(1e-3), hp, np.float32(0), np.float32(0.1), np.float32(0.001),
            np.float32(0))
    runs = {}
    for T in (1, 2):
        flat, s1, s2, G = _case(np.float32, T, n=n)
        Gc = G.copy()

        def sweep(flat=flat, s1=s1, s2=s2, G=G, Gc=Gc, T=T):
            G[...] = Gc  # the sweep clears what it reads
            update_range((flat, s1, s2), rule, G, T, 0, n, 0)
        sweep()  # compiled
        runs[T] = sweep
    best = {1: np.inf, 2: np.inf}
    for _ in range(9):
        for T, fn in runs.items():
            best[T] = min(best[T], _seconds(fn))
    assert best[1] < 1.6 * best[2], best
