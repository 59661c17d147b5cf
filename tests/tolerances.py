"""Test precision in one place (stumpy's config.py idea)."""

#: backend parity, float64: the kernels compute the same sums in another order
RTOL_F64 = 1e-10
ATOL_F64 = 1e-12
#: backend parity, float32
RTOL_F32 = 1e-4
ATOL_F32 = 1e-6
#: 20 train_steps / an epoch on both backends, float64 weights
STEPS_ATOL_F64 = 1e-9
#: central differences vs analytic gradients (relative error)
GRAD_RTOL = 1e-6


def tol(dtype):
    """(rtol, atol) for comparing the two backends in `dtype`."""
    import numpy as np
    return (RTOL_F64, ATOL_F64) if np.dtype(dtype) == np.float64 else (RTOL_F32, ATOL_F32)
