"""The vector intrinsics of ``_lanes``, written as plain Numba loops: the fallback path.

Each function here has the name, arguments and results of its twin in ``_lanes`` (read that
module's docstrings for the contracts); the Numba backend imports one set or the other
(``numba_cpu.INTRINSICS``). These loops leave vectorization to LLVM, so they compile for any
CPU that Numba supports (aarch64 included) and depend on no LLVM intrinsic names. They are
slower than the intrinsics on x86-64 (the running sums of a row live in memory), but still
fused, sparse and compiled.

The pixel rows come by index (x_idx, a CSR row) or, with x_idx None, as rows 0, 1, ... in
order (a dense layer); scale None means no scaling. Numba prunes the ``is None`` branches at
compile time, so each call site compiles one loop.
"""

import numpy as np

from ._jit import borrow, jit

#: outputs held in one vector by ``_lanes`` (here: the widths the callers treat as narrow)
LANES = 16

#: the lowest argument of softmax_grad's exp (as ``_lanes._EXP_FLOOR``)
_EXP_FLOOR = -64.0


@jit
def _pixel(q, x_idx, x_val, scale):
    """(row index, scaled value) of the q-th nonzero pixel: x_idx[q] (or q when x_idx is
    None) and x_val[q] * scale (x_val[q] when scale is None)."""
    if x_idx is None:
        k = q
    else:
        k = x_idx[q]
    if scale is None:
        v = x_val[q]
    else:
        v = x_val[q] * scale
    return k, v


@jit
def _axpy_rows(w, wo, h, x_idx, x_val, n_nz, scale, z):
    """z[:h] += sum over q < n_nz of (x_val[q] * scale) * w[wo + x_idx[q] * h:][:h]."""
    w = borrow(w)  # its slices below then take no reference counts (see ``_jit.borrow``)
    for q in range(0, n_nz - 3, 4):  # four pixels a pass: z loaded and stored once for four
        k0, v0 = _pixel(q, x_idx, x_val, scale)
        k1, v1 = _pixel(q + 1, x_idx, x_val, scale)
        k2, v2 = _pixel(q + 2, x_idx, x_val, scale)
        k3, v3 = _pixel(q + 3, x_idx, x_val, scale)
        r0 = w[wo + k0 * h:wo + (k0 + 1) * h]  # slices: index j >= 0 lets LLVM vectorize
        r1 = w[wo + k1 * h:wo + (k1 + 1) * h]
        r2 = w[wo + k2 * h:wo + (k2 + 1) * h]
        r3 = w[wo + k3 * h:wo + (k3 + 1) * h]
        for j in range(h):
            z[j] += (v0 * r0[j] + v1 * r1[j]) + (v2 * r2[j] + v3 * r3[j])
    for q in range(n_nz - n_nz % 4, n_nz):
        k, v = _pixel(q, x_idx, x_val, scale)
        row = w[wo + k * h:wo + (k + 1) * h]
        for j in range(h):
            z[j] += v * row[j]


@jit
def nz_dot(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z):
    """z[:h] = b[:h] + sum over q < n_nz of (x_val[q] * scale) * w[wo + x_idx[q] * h:][:h],
    then ReLU (z * 0 where not z > 0, so NaN stays NaN) if relu. b may be z itself."""
    for j in range(h):
        z[j] = b[j]  # b may be z itself
    _axpy_rows(w, wo, h, x_idx, x_val, n_nz, scale, z)
    if relu:
        for j in range(h):
            v = z[j]
            z[j] = v if v > 0 else v * 0


@jit
def nz_dot_wide(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z):
    """``nz_dot`` for any width h (the plain loop has no width limit)."""
    nz_dot(w, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)


@jit
def nz_outer(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz):
    """g[wo + x_idx[q] * h:][:h] += (x_val[q] * scale) * dz[:h] for every q < n_nz, and the
    bias gradient g[bo:bo + h] += dz[:h]; h outside 1..LANES updates nothing (as ``_lanes``)."""
    if 1 <= h <= LANES:
        outer_rows(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz)


@jit
def outer_rows(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz):
    """``nz_outer`` for any width h: the loop ``numba_cpu`` also runs for layers wider than
    LANES, on either path."""
    g = borrow(g)
    for q in range(n_nz):
        k, v = _pixel(q, x_idx, x_val, scale)
        row = g[wo + k * h:wo + (k + 1) * h]
        for j in range(h):
            row[j] += v * dz[j]
    gb = g[bo:bo + h]
    for j in range(h):
        gb[j] += dz[j]


@jit
def rows_dot(w, wo, h, n, dz, a, out):
    """out[k] = w[wo + k * h:][:h] . dz[:h] for k < n, times 0 where not a[k] > 0 (ReLU
    backward from the layer's output a; None: no ReLU). Any width h: ``numba_cpu`` runs it
    for layers wider than LANES on either path."""
    w = borrow(w)
    for k in range(n):
        row = w[wo + k * h:wo + (k + 1) * h]
        s = dz[0] * 0
        for j in range(h):
            s += row[j] * dz[j]
        if a is None:
            out[k] = s
        else:
            out[k] = s if a[k] > 0 else s * 0


@jit
def softmax_grad(z, c, label, inv_n, flush, dz):
    """Softmax cross-entropy of logits z[:c] against `label`, and its gradient.

    dz[:c] = (softmax(z) - onehot(label)) * inv_n, where exp(z - max) below e^flush counts as
    0 (flush raised to -64 if lower). Returns (sum of exp(z - max), max, argmax), the argmax
    the first index of the largest logit.
    """
    mx = z[0]
    best = 0
    for j in range(1, c):
        if z[j] > mx:
            mx = z[j]
            best = j
    fl = flush if flush > _EXP_FLOOR else _EXP_FLOOR
    s = mx * 0  # z[0] may be -inf
    for j in range(c):
        d = z[j] - mx
        e = np.exp(d) if d > fl else np.exp(d) * 0  # NaN stays NaN, -inf gives 0
        dz[j] = e
        s += e
    inv = 1 / s
    for j in range(c):
        p = dz[j] * inv
        dz[j] = (p - 1 if j == label else p) * inv_n
    return s, mx, best


@jit
def prefetch(a, i):
    """No-op: the plain path leaves prefetching to the CPU."""
    return
