"""Test precision in one place (stumpy's config.py idea)."""

#: backend parity, float64: the kernels compute the same sums in another order
RTOL_F64 = 1e-10
ATOL_F64 = 1e-12
#: backend parity, float32
RTOL_F32 = 1e-4
ATOL_F32 = 1e-6
#: a sum of d terms in another order, relative to the sum of the terms' magnitudes: about
#: sqrt(784) units in the last place (a sum's rounding error grows with the terms, not with
#: the result; where they cancel, as in x @ W near 0, an error relative to the result is
#: meaningless: float32 without FMA, on x86-64 before AVX, moved one of 16,384 outputs of
#: 784-wide sums of magnitude ~5 by 1.6e-6)
TERMS_F64 = 1e-14
TERMS_F32 = 4e-6
#: 20 train_steps / an epoch on both backends, float64 weights
STEPS_ATOL_F64 = 1e-9
#: central differences vs analytic gradients (relative error)
GRAD_RTOL = 1e-6


def tol(dtype):
    """(rtol, atol) for comparing the two backends in `dtype`."""
    import numpy as np
    return (RTOL_F64, ATOL_F64) if np.dtype(dtype) == np.float64 else (RTOL_F32, ATOL_F32)


def sums_close(a, b, magnitude, dtype):
    """a and b (sums of the same terms in any order) agree within tol(dtype), or within
    TERMS_* times `magnitude`, the sum of the terms' absolute values (same shape)."""
    import numpy as np
    rtol, atol = tol(dtype)
    terms = TERMS_F64 if np.dtype(dtype) == np.float64 else TERMS_F32
    bound = atol + rtol * np.abs(b) + terms * np.asarray(magnitude, np.float64)
    err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert (err <= bound).all(), (
        f"{int((err > bound).sum())} of {err.size} beyond tolerance; worst at {worst}: "
        f"{a[worst]} vs {b[worst]}, bound {bound[worst]:.3g}")
