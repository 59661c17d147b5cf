"""The seed notebook's full-batch loop, compiled: the kernels behind
``fastmnist.compat.gradient_descent(..., backend="numba")``.

They run the notebook's own math, quirks included (scalar bias gradients, an unshifted
softmax), which is not the backend protocol's: hence a module of their own beside
``numba_cpu``, whose layer-1 kernels they use. Compiled through ``_jit`` (the project's flags
and cache folder).
"""

import numpy as np

from ._jit import borrow, jit, pjit, prange
from .numba_cpu import input_backward, input_forward


@jit
def columns_to_csr(X):
    """The columns of X (d, m) as sparse rows: indptr (m + 1,), indices (nnz,), values (nnz,).

    Example j's nonzero pixels are ``indices[indptr[j]:indptr[j + 1]]`` (increasing) with
    ``values`` alongside. Reads X row by row (contiguous), writes through a cursor per column.
    """
    d, m = X.shape
    indptr = np.zeros(m + 1, dtype=np.int64)
    for k in range(d):
        for j in range(m):
            if X[k, j] != 0.0:
                indptr[j + 1] += 1
    for j in range(m):
        indptr[j + 1] += indptr[j]
    indices = np.empty(indptr[m], dtype=np.int32)
    values = np.empty(indptr[m], dtype=np.float64)
    cursor = indptr[:m].copy()
    for k in range(d):
        for j in range(m):
            v = X[k, j]
            if v != 0.0:
                indices[cursor[j]] = k
                values[cursor[j]] = v
                cursor[j] += 1
    return indptr, indices, values


@pjit
def gd_steps(params, csr, onehot, alpha, inv_m, n_steps, record, T, preds):
    """Run `n_steps` notebook iterations in place (float64; NaNs propagate).

    params (W1T, b1, W2, b2), updated in place: W1T is (d, h) = W1.T, b1 (h,), W2 (c, h),
    b2 (c,); csr (indptr, indices, values): the examples as the CSR arrays of
    :func:`columns_to_csr`; onehot (m, c) = one_hot(Y).T; the learning rate alpha and
    inv_m = 1 / m. If `record`, preds (m,) gets the argmax of A2 from the first step's
    forward pass (what the notebook prints).
    The examples are cut into `T` contiguous slices (one per thread), each with its own
    gradient buffers, reduced serially: results are deterministic for a fixed `T`. Layer 1
    goes through the Numba backend's kernels over the nonzero pixels (four pixels a pass).
    """
    W1T, b1, W2, b2 = params
    indptr, indices, values = csr
    d, h = W1T.shape
    c = W2.shape[0]
    m = indptr.shape[0] - 1
    W1f = W1T.reshape(-1)       # (d * h,): row k is W1[:, k]
    gW1 = np.empty((T, d * h + h))  # per-thread sum over examples of x dZ1^T, then of dZ1
    gW2 = np.empty((T, c, h))   # per-thread sum of dZ2 A1^T
    gb = np.empty((T, 2))       # per-thread sums of dZ1 and dZ2 (the scalar bias gradients)
    # per-thread rows padded past a cache line: threads writing neighbouring rows of one line
    # (false sharing) made two threads slower than one
    pad = 16
    z1 = np.empty((T, h + pad))
    a1 = np.empty((T, h + pad))
    dz2 = np.empty((T, c + pad))
    one = W1f[0] * 0 + 1.0
    for step in range(n_steps):
        for t in prange(T):
            g1, g2, z, a, dz = gW1[t], gW2[t], z1[t, :h], a1[t, :h], dz2[t, :c]
            g1[:] = 0.0
            g2[:] = 0.0
            db1_t = 0.0
            db2_t = 0.0
            for j in range(t * m // T, (t + 1) * m // T):
                lo, hi = indptr[j], indptr[j + 1]
                # Z1 = W1 X + b1, A1 = ReLU(Z1), over the nonzero pixels of example j
                input_forward(W1f, 0, b1, h, indices[lo:hi], values[lo:hi], hi - lo, one, False,
                               z)
                for u in range(h):
                    a[u] = np.maximum(z[u], 0.0)
                # Z2 = W2 A1 + b2, A2 = exp(Z2) / sum(exp(Z2)), unshifted like the notebook
                s = 0.0
                for v in range(c):
                    w2 = W2[v]
                    zz = 0.0
                    for u in range(h):
                        zz += w2[u] * a[u]
                    e = np.exp(zz + b2[v])
                    dz[v] = e
                    s += e
                best = 0
                for v in range(c):
                    dz[v] /= s
                    if dz[v] > dz[best]:
                        best = v
                if record and step == 0:
                    preds[j] = best
                # dZ2 = A2 - one_hot(Y); dW2 += dZ2 A1^T
                for v in range(c):
                    dz[v] -= onehot[j, v]
                    db2_t += dz[v]
                    g2v = g2[v]
                    for u in range(h):
                        g2v[u] += dz[v] * a[u]
                # dZ1 = W2^T dZ2 * (Z1 > 0); dW1 += X dZ1^T; z is reused to hold dZ1
                for u in range(h):
                    g = 0.0
                    for v in range(c):
                        g += W2[v, u] * dz[v]
                    z[u] = g * (1.0 if z[u] > 0.0 else 0.0)
                    db1_t += z[u]
                input_backward(g1, 0, d * h, h, indices[lo:hi], values[lo:hi], hi - lo, one,
                                z)
            gb[t, 0] = db1_t
            gb[t, 1] = db2_t
        # W = W - alpha * (1/m * sum over threads); every bias moves by the same scalar.
        # W1T's row through borrow: Numba 0.68 may lose a parallel loop's writes to an array
        # taken out of a tuple argument (see ``columns._step``)
        for k in prange(d):
            w1 = borrow(W1T[k])
            for u in range(h):
                g = 0.0
                for t in range(T):
                    g += gW1[t, k * h + u]
                w1[u] -= alpha * (inv_m * g)
        for v in range(c):
            for u in range(h):
                g = 0.0
                for t in range(T):
                    g += gW2[t, v, u]
                W2[v, u] -= alpha * (inv_m * g)
        db1 = 0.0
        db2 = 0.0
        for t in range(T):
            db1 += gb[t, 0]
            db2 += gb[t, 1]
        for u in range(h):
            b1[u] -= alpha * (inv_m * db1)
        for v in range(c):
            b2[v] -= alpha * (inv_m * db2)
