"""The Numba backend's path for dense inputs: each step's matmuls by BLAS, the rest compiled.

Skipping zero pixels (the CSR path of :mod:`numba_cpu`) wins when most inputs are zero, as in
raw MNIST (81% zeros). Standardized pixels or tabular features are mostly nonzero; row by
row, layer 1 is then a matrix-vector product per row, bound by reading ``W1``. Here a batch
goes through each layer as one matrix product (NumPy's BLAS, on every thread Numba may use), and
everything between the products is one small compiled kernel: gathering the batch's rows
(uint8 scaled, any float cast), bias + activation, the output head with its loss, the bias
gradients, and one sweep of the optimizer over the flat parameter vector
(``kernels.update_range``, shared with the CSR path).

Shapes: ``m`` rows in the step, ``d_l`` the width of layer ``l`` (``d_0`` the features),
``C`` outputs, ``L`` layers.
"""

import numpy as np

from .._blas import blas_threads
from ._jit import jit, n_parts
from ._shift import keeps, layer_key, row_shifts, row_warps, warp_row
from .kernels import (
    activate_in_place,
    aligned_zeros,
    drop_units,
    ema_step,
    max_norm_flat,
    output_grad,
    prefetch,
    scale_for,
    stride,
    times_derivative,
    update_range,
)


@jit
def _gather(values, d_in, rows, scale, out, next_rows, shift):
    """out (m, d_in) = rows `rows` of values (n * d_in,), times scale (uint8 or any float in,
    out's dtype out); then prefetch the rows `next_rows` (the next step's), so that they come
    from cache, not memory, when their turn comes (measured: 51 against 17 us per step of
    128 standardized MNIST rows). shift (k, side, key, thr_in, warp): with k > 0, each row
    moved by its random shift (``_shift.row_shifts``), 0 where uncovered; with warp != 0,
    warped by its random affine map first (``_shift.row_warps``); with thr_in > 0, the pixels
    that input dropout drops set to 0 (``_shift.keeps``; the caller scales the rest)."""
    k_max, side, key, thr_in, warp = shift
    for i in range(rows.shape[0]):
        src = values[rows[i] * d_in:(rows[i] + 1) * d_in]
        dst = out[i]
        if k_max == 0 and warp == 0:
            for k in range(d_in):
                dst[k] = src[k] * scale
            continue
        dy, dx = row_shifts(key, rows[i], k_max)  # (0, 0) for k_max 0
        if warp != 0:
            warp_row(src, dy, dx, row_warps(key, rows[i], warp), side, scale, dst)
            continue
        for r in range(side):
            for c in range(side):
                sr, sc = r - dy, c - dx
                inside = 0 <= sr < side and 0 <= sc < side
                dst[r * side + c] = src[sr * side + sc] * scale if inside else src[0] * 0
    if thr_in > 0:
        for i in range(rows.shape[0]):
            lkey = layer_key(key, rows[i], 0)
            dst = out[i]
            for k in range(d_in):
                if not keeps(lkey, k, thr_in):
                    dst[k] = 0
    per_line = max(1, 64 // values.itemsize)
    for i in range(next_rows.shape[0]):
        start = next_rows[i] * d_in
        for k in range(start, start + d_in, per_line):
            prefetch(values, k)


@jit
def _bias_act(z, b, act, hidden, rows, noise):
    """z (m, d) += b (d,), then the hidden activation (code act) if hidden, then inverted
    dropout (noise (key, layer, thr, s), thr > 0: ``kernels.drop_units`` of each row's
    mask ``layer_key(key, rows[i], layer)``)."""
    for i in range(z.shape[0]):
        row = z[i]
        for j in range(row.shape[0]):
            v = row[j] + b[j]
            row[j] = v if (v > 0 or act != 0 or not hidden) else v * 0
        if hidden and act != 0:
            activate_in_place(row, act)
        if hidden and noise[2] > 0:
            drop_units(row, layer_key(noise[0], rows[i], noise[1]), noise[2], noise[3])


@jit
def _head(z, y, rows, task, inv_n, dz):
    """The output head on logits z (m, C) of the rows `rows`: dz (m, C) = the gradient of the
    step's loss (scaled by inv_n, and by each row's weight); returns (weighted loss sum, right
    answers). task (head, Yt, sw, eps) as in ``numba_cpu._batch_grads``."""
    head, Yt, sw, eps = task
    weighted = sw.shape[0] > 0
    loss_sum = 0.0
    correct = 0
    for i in range(z.shape[0]):
        r = rows[i]
        w_r = inv_n * sw[r] if weighted else inv_n
        loss, ok = output_grad(z[i], y[r], Yt[r] if head != 0 else Yt[0], w_r, head, eps,
                               dz[i])
        loss_sum += loss * sw[r] if weighted else loss
        correct += ok
    return loss_sum, correct


@jit
def _bias_grad(dz, gb):
    """gb (d,) = dz (m, d) summed over the rows."""
    gb[:] = 0
    for i in range(dz.shape[0]):
        row = dz[i]
        for j in range(row.shape[0]):
            gb[j] += row[j]


@jit
def _derivative(da, a, act, s):
    """da (m, d) *= f'(z) * s, from the hidden output a (m, d) = f(z) (s: the dropout scale
    of a, 1 without dropout)."""
    for i in range(da.shape[0]):
        times_derivative(da[i], a[i], act)
        if s != 1:
            row = da[i]
            for j in range(row.shape[0]):
                row[j] *= s


@jit
def _update(state, rule, G, layout):
    """``numba_cpu._reduce_update`` on the calling thread, for one gradient buffer G (1, P):
    a parallel region here would wait for threads that BLAS's own keep busy. state (flat,
    s1, s2), updated in place, and rule (opt, lr, hp, wd, c1, c2, thr): see
    ``kernels.update_range``; layout (sizes, woff): the layer widths and where each W
    starts in flat."""
    sizes, woff = layout
    opt, lr, hp, wd, c1, c2, thr = rule
    for l in range(sizes.shape[0] - 1):
        wo = woff[l]
        bo = wo + sizes[l] * sizes[l + 1]
        update_range(state, rule, G, 1, wo, bo, 0)
        update_range(state, (opt, lr, hp, wd - wd, c1, c2, thr), G, 1, bo, bo + sizes[l + 1], 0)


def train_steps(flat, state, layout, data, y, order, batch_size, steps, act, task, aug):
    """The optimizer steps of ``numba_cpu.train_epoch`` for dense inputs, in place.

    flat, s1, s2 = state: the parameters and optimizer state (P,); layout (sizes (L + 1,),
    woff (L,), P); data: a Prepared in MODE_GEMM (values (n * d_0,)); steps: the per-step
    arrays of ``numba_cpu._run_steps`` (lrs, inv_ns, c1s, c2s, opt, hps, wds, thrs, wsum,
    losses); aug (k, side, keys (n_steps,), max_norm, thr_in, thr_hidden, s_hidden, s_in,
    ema, a): random shifts, the max-norm constraint and dropout as ``_run_steps`` takes them,
    the input dropout's 1 / (1 - p), and the weights' moving average (ema (P,), a = 1 - decay;
    0: none). Returns (steps run, right answers); stops before updating at a non-finite loss.
    """
    s1, s2 = state
    sizes, woff, P = layout
    lrs, inv_ns, c1s, c2s, opt, hps, wds, thrs, wsum, losses = steps
    dtype = flat.dtype
    L = len(sizes) - 1
    d = [int(v) for v in sizes]
    Ws, bs = [], []
    G = aligned_zeros((1, stride(P, dtype)), dtype)
    GWs, Gbs = [], []
    for l in range(L):
        wo, n_w = int(woff[l]), d[l] * d[l + 1]
        Ws.append(flat[wo:wo + n_w].reshape(d[l], d[l + 1]))
        bs.append(flat[wo + n_w:wo + n_w + d[l + 1]])
        GWs.append(G[0, wo:wo + n_w].reshape(d[l], d[l + 1]))
        Gbs.append(G[0, wo + n_w:wo + n_w + d[l + 1]])
    B = min(batch_size, len(order))
    xb = np.empty((B, d[0]), dtype=dtype)
    Z = [np.empty((B, d[l + 1]), dtype=dtype) for l in range(L)]  # layer outputs
    dZ = [np.empty((B, d[l + 1]), dtype=dtype) for l in range(L)]  # their deltas
    scale = scale_for(data.values, dtype, data.scale) * aug[7]  # input dropout's 1 / (1 - p)
    values = data.values
    n_correct = 0
    m_all = len(order)
    # BLAS splits a product's inner dimension by its thread count (K = 784 on 1 thread and on
    # 2 threads summed in different pieces), so it runs on a count fixed per machine, not on
    # threads= or the governor's choice: the results do not depend on them
    # a diverging run overflows: reported by its non-finite loss, not by NumPy warnings
    with blas_threads(n_parts(1 << 62)), np.errstate(over="ignore", invalid="ignore"):
        for s in range(len(lrs)):
            lo = s * batch_size
            hi = min(lo + batch_size, m_all)
            rows = order[lo:hi]
            m = hi - lo
            a = xb[:m]
            _gather(values, d[0], rows, scale, a, order[hi:hi + batch_size],
                    (aug[0], aug[1], aug[2][s], aug[4], aug[10]))
            for l in range(L):  # forward: z = a @ W + b, then f
                z = Z[l][:m]
                np.matmul(a, Ws[l], out=z)
                _bias_act(z, bs[l], act, l < L - 1, rows, (aug[2][s], l + 1, aug[5], aug[6]))
                a = z
            loss_sum, ok = _head(a, y, rows, task, inv_ns[s], dZ[L - 1][:m])
            loss = loss_sum / wsum[s]
            losses[s] = loss
            if not np.isfinite(loss):
                return s + 1, n_correct
            n_correct += ok
            for l in range(L - 1, -1, -1):  # backward: G[W] = a^T dz, G[b] = sum dz
                dz = dZ[l][:m]
                a_in = xb[:m] if l == 0 else Z[l - 1][:m]
                np.matmul(a_in.T, dz, out=GWs[l])
                _bias_grad(dz, Gbs[l])
                if l > 0:  # da = dz W^T, times f'
                    np.matmul(dz, Ws[l].T, out=dZ[l - 1][:m])
                    _derivative(dZ[l - 1][:m], a_in, act, aug[6])
            _update((flat, s1, s2), (opt, lrs[s], hps[s], wds[s], c1s[s], c2s[s], thrs[s]), G,
                    (sizes, woff))
            if aug[3] > 0:
                max_norm_flat(flat, sizes, woff, aug[3])
            if aug[9] > 0:
                ema_step(aug[8], flat, aug[9])
    return len(lrs), n_correct
