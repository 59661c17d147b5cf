"""The compiled building blocks that the three ways of running steps share.

The row split of :mod:`.numba_cpu` (a batch's rows in one fixed part per thread), the split by
hidden units of :mod:`.columns` and the BLAS path of :mod:`.gemm` all put a step together from
these: one row's layer-1 input (:func:`row_input`) and its forward (:func:`input_forward`), the
backward of a dense layer (:func:`dense_backward`), the output head (:func:`output_grad`), the
pixel-bucketed layer-1 ``dW`` (:func:`bucket_block`, :func:`bucket_backward`), the optimizer
update of a range of the flat parameters (:func:`update_range`), dropout, max-norm and the
weights' moving average; and on the Python side the buffers' alignment and strides.

The vector intrinsics (``_lanes``) or the plain Numba loops (``_plain``) are chosen here,
once: the intrinsics are self-tested on first import and the plain loops taken if they do
not compile. Kernels in other files compile these functions into themselves, so this file
is in ``_jit._INLINED``: an edit to it invalidates every cached kernel.
"""

import mmap

import numpy as np
from numba.extending import overload

from . import _jit, _plain
from ._jit import jit

if _jit.PATH == "lanes" and not _jit.self_test_passed():
    try:
        from . import _lanes
        _lanes.self_test()
        _jit.mark_self_test_passed()
    except Exception as e:  # noqa: BLE001 - any failure to lower them: the plain loops
        import warnings
        warnings.warn(f"fastmnist: the vector intrinsics do not compile here ({e}); using "
                      "the plain Numba loops (FASTMNIST_INTRINSICS=0 chooses them)",
                      RuntimeWarning, stacklevel=2)
        _jit.PATH = "plain"
from ._shift import (  # noqa: E402
    drop_nonzeros,
    keeps,
    layer_key,
    row_shifts,
    row_warps,
    shift_nonzeros,
    warp_nonzeros,
)

if _jit.PATH == "lanes":
    from ._lanes import LANES, nz_dot, nz_dot_wide, nz_outer, prefetch, rows_dot, softmax_grad
else:
    from ._plain import LANES, nz_dot, nz_dot_wide, nz_outer, prefetch, rows_dot, softmax_grad
#: whether gather_nonzeros packs a uint8 row's nonzeros with vpcompressb (``_jit.COMPRESS``)
COMPRESS = _jit.COMPRESS
#: whether it packs them with vector instructions at all: vpcompressb, else pshufb by a table
#: (``_lanes.shuffle_nonzeros``) on the other CPUs of the intrinsics' path
PACKED = _jit.PATH == "lanes"
from ._lanes import compress_nonzeros, compress_takes, shuffle_nonzeros  # noqa: E402

#: that vector gather, for the types ``_lanes.compress_takes`` accepts; compiled only where
#: PACKED (LLVM cannot lower vpcompressb for a CPU without VBMI2: it aborts the process)
pack_nonzeros = compress_nonzeros if COMPRESS else shuffle_nonzeros


#: uint8 pixels are multiplied by this (in the parameters' dtype), as in the reference
SCALE = 1.0 / 255.0


#: layer-1 input modes: CSR walk (skips zeros), dense row skipping zeros, dense row, dense
#: rows for BLAS (:mod:`.gemm`; the row kernels read them as MODE_DENSE_SKIP)
MODE_CSR, MODE_DENSE_SKIP, MODE_DENSE, MODE_GEMM = 0, 1, 2, 3


#: softmax outputs below exp(FLUSH_LOGIT) are flushed to zero, so that no denormal
#: floats reach the backward pass (each one costs ~100 cycles on x86)
FLUSH_LOGIT = -64.0


@jit
def softmax_row(z, out):
    """out (C,) = softmax(z (C,)), shifted by the max; returns log(sum exp(z - max)) + max."""
    mx = z[0]
    for j in range(1, z.shape[0]):
        mx = max(mx, z[j])
    s = mx * 0  # z[0] may be -inf
    for j in range(z.shape[0]):
        d = z[j] - mx
        # e^-64 ~ 1.6e-28: anything smaller only feeds denormals (100x slower) downstream
        e = np.exp(d) if d > FLUSH_LOGIT else np.exp(d) * 0  # NaN stays NaN, -inf gives 0
        out[j] = e
        s += e
    inv = 1 / s
    for j in range(z.shape[0]):
        out[j] *= inv
    return np.log(s) + mx


@jit
def logistic(v):
    """1 / (1 + exp(-v)) without overflow for either sign of v."""
    e = np.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


@jit
def activate_in_place(z, act):
    """z (d,) = f(z) in place for a hidden activation other than ReLU (which is fused into
    the matmuls): act 1 tanh, 2 logistic, 3 identity (nothing to do)."""
    if act == 1:
        for j in range(z.shape[0]):
            z[j] = np.tanh(z[j])
    elif act == 2:
        for j in range(z.shape[0]):
            z[j] = logistic(z[j])


@jit
def times_derivative(da, a, act):
    """da (d,) *= f'(z) in place, from the output a (d,) = f(z): act 0 ReLU (a > 0), 1 tanh
    (1 - a^2), 2 logistic (a (1 - a)), 3 identity (1)."""
    if act == 0:
        for j in range(da.shape[0]):
            da[j] = da[j] if a[j] > 0 else da[j] * 0
    elif act == 1:
        for j in range(da.shape[0]):
            da[j] *= 1 - a[j] * a[j]
    elif act == 2:
        for j in range(da.shape[0]):
            da[j] *= a[j] * (1 - a[j])


@jit
def _head_grad(z, yrow, inv_n, head, dz):
    """Loss of the output z (C,) against the target row yrow (C,), and dz = (f(z) - y) * inv_n,
    for the heads other than softmax: head 1 logistic outputs and binary cross-entropy summed
    over them; head 2 identity outputs and half the squared error averaged over them
    (scikit-learn's losses; as there, dz is the gradient of the sum over the outputs).
    Returns (loss, 1 if every output is right else 0; 0 for head 2).
    """
    c = z.shape[0]
    loss = 0.0
    correct = 1 if head == 1 else 0
    if head == 1:
        for j in range(c):
            v, t = z[j], yrow[j]
            sp = np.log1p(np.exp(-abs(v)))  # -log p = softplus(-v), -log(1 - p) = softplus(v)
            loss += t * (max(-v, v * 0) + sp) + (1 - t) * (max(v, v * 0) + sp)
            dz[j] = (logistic(v) - t) * inv_n
            if (v > 0) != (t > 0.5):
                correct = 0
    else:
        for j in range(c):
            d = z[j] - yrow[j]
            loss += 0.5 * d * d
            dz[j] = d * inv_n
        loss /= c
    return loss, correct


@jit
def input_forward(flat, wo, b, h, x_idx, x_val, n_nz, scale, relu, z):
    """z (h,) = b (h,) + sum over nonzero pixels k of (x_k * scale) * W[k, :]; W at flat[wo:];
    then ReLU if relu.

    The running sums stay in vector registers across the pixels (``_lanes``): one vector for
    layers at most LANES wide, CHUNK outputs per pass over the pixels for wider ones.
    """
    if h <= LANES:
        nz_dot(flat, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)
    else:
        nz_dot_wide(flat, wo, h, x_idx, x_val, n_nz, scale, b, relu, z)


@jit
def dense_backward(flat, g, wo, bo, d_in, d_out, a, dz, da, act):
    """G[W] += a (outer) dz, G[b] += dz, and da (d_in,) = (W @ dz) * f'(z), the backward of
    the hidden activation (code act; ReLU: a > 0) from the layer's input a (unless da is
    empty)."""
    if d_out <= LANES:
        nz_outer(g, wo, d_out, None, a, d_in, None, bo, dz)
        if da.shape[0]:
            if act == 0:
                rows_dot(flat, wo, d_out, d_in, dz, a, da)
            else:
                rows_dot(flat, wo, d_out, d_in, dz, None, da)
                times_derivative(da, a, act)
    else:  # wider than the intrinsics: the plain loops, on either path
        _plain.outer_rows(g, wo, d_out, None, a, d_in, None, bo, dz)
        if da.shape[0]:
            if act == 0:
                _plain.rows_dot(flat, wo, d_out, d_in, dz, a, da)
            else:
                _plain.rows_dot(flat, wo, d_out, d_in, dz, None, da)
                times_derivative(da, a, act)


@jit
def transpose_into(flat, wo, d_in, d_out, wt):
    """wt[:d_out * d_in] = W.T row-major, W (d_in, d_out) at flat[wo:]."""
    w = flat[wo:wo + d_in * d_out]
    for k in range(d_in):
        for j in range(d_out):
            wt[j * d_in + k] = w[k * d_out + j]


@jit
def add_transposed(gt, g, wo, d_in, d_out):
    """g[wo:] (d_in, d_out) += gt (d_out, d_in).T: :func:`transposed_backward`'s gradient,
    into the layer's own layout."""
    gw = g[wo:wo + d_in * d_out]
    for k in range(d_in):
        for j in range(d_out):
            gw[k * d_out + j] += gt[j * d_in + k]


@jit
def transposed_backward(wt, d_in, d_out, a, dz, da, act):
    """The input gradient of a narrow layer (d_in -> d_out, d_out small) from its weights
    transposed, wt (d_out, d_in) = W.T (:func:`transpose_into`): da (d_in,) = (W @ dz) *
    f'(z), from the layer's input a (d_in,) = f(z) (act as ``times_derivative``).

    The running sums of da stay in vector registers across the d_out entries of dz
    (``input_forward`` over the rows of W.T): no horizontal sum for each of the d_in dot
    products of length d_out, as ``rows_dot`` takes.
    """
    zero_fill(da)
    input_forward(wt, 0, da, d_in, None, dz, d_out, None, False, da)
    times_derivative(da, a, act)


@jit
def outer_block(gt, d_in, d_out, A, ao, dzt, m):
    """gt (d_out, d_in) += sum over the rows i < m of outer(dz_i, a_i), a narrow layer's
    weight gradient transposed (:func:`add_transposed`), from the block's inputs a_i =
    A[ao + i * d_in:][:d_in] and its deltas transposed, dzt (d_out, >= m): each row of gt
    summed in vector registers across the block's rows (``input_forward``), stored once."""
    ld = dzt.shape[0] // d_out
    for j in range(d_out):
        gw = gt[j * d_in:(j + 1) * d_in]
        input_forward(A, ao, gw, d_in, None, dzt[j * ld:j * ld + m], m, None, False, gw)


@jit
def drop_units(z, lkey, thr, s):
    """Inverted dropout of z (d,) in place: unit j times s where the mask lkey keeps it, else
    0 (``_shift.keeps``)."""
    for j in range(z.shape[0]):
        z[j] = z[j] * s if keeps(lkey, j, thr) else z[j] * 0


@jit
def _argmax(v):
    best = 0
    for j in range(1, v.shape[0]):
        if v[j] > v[best]:
            best = j
    return best


@jit
def output_grad(p, label, yrow, inv_n, head, eps, dz):
    """The output head of one row from its logits p (C,): dz (C,) = the gradient of its loss,
    scaled by inv_n; returns (loss, 1 if the prediction is right else 0). head 0: softmax
    against the integer `label` (p overwritten with the probabilities when C > LANES), with
    label smoothing eps (the target (1 - eps) onehot + eps / C; 0: none); 1, 2: logistic or
    identity outputs against the target row yrow (C,) (``_head_grad``)."""
    if head != 0:
        return _head_grad(p, yrow, inv_n, head, dz)
    if eps > 0:
        return _smoothed_grad(p, label, inv_n, eps, dz)
    if p.shape[0] <= LANES:  # all of it in one vector
        s, mx, best = softmax_grad(p, p.shape[0], label, inv_n, FLUSH_LOGIT, dz)
        return np.log(s) + mx - p[label], 1 if best == label else 0
    correct = 1 if _argmax(p) == label else 0
    z_label = p[label]
    loss = softmax_row(p, p) - z_label  # log-sum-exp - z_y: exact even for huge logits
    # fused softmax + cross-entropy backward: dz = (p - onehot(y)) / n
    for j in range(p.shape[0]):
        dz[j] = p[j] * inv_n
    dz[label] = (p[label] - 1) * inv_n
    return loss, correct


@jit
def _smoothed_grad(p, label, inv_n, eps, dz):
    """``output_grad`` of softmax with label smoothing eps > 0: the cross-entropy against
    q = (1 - eps) onehot(label) + eps / C is log-sum-exp(z) - (1 - eps) z_y - eps mean(z),
    and its gradient (softmax(z) - q) * inv_n."""
    c = p.shape[0]
    z_label = p[label]
    z_mean = p[0] * 0
    for j in range(c):
        z_mean += p[j]
    z_mean /= c
    correct = 1 if _argmax(p) == label else 0
    loss = softmax_row(p, p) - z_label + eps * (z_label - z_mean)
    spread = eps / c
    for j in range(c):
        dz[j] = (p[j] - spread) * inv_n
    dz[label] = (p[label] - (1 - eps) - spread) * inv_n
    return loss, correct


@jit
def prefetch_row(indptr, indices, values, r_next, r_after):
    """Prefetch row r_next's CSR slice (whose indptr entry came one row earlier) and the
    indptr entry of r_after."""
    a, b = indptr[r_next], indptr[r_next + 1]
    for q in range(a, b, 32):  # 64-byte lines of uint16 indices
        prefetch(indices, q)
    for q in range(a, b, 64):
        prefetch(values, q)
    prefetch(indptr, r_after)


@jit
def row_input(r, mode, indptr, indices, values, iota, d_in, cidx, cval, shift):
    """(pixel indices, pixel values, count) of row r's layer-1 input.

    mode MODE_CSR (0): the CSR row (nonzeros only); MODE_DENSE_SKIP (1): the dense row's
    nonzeros, gathered on the fly into cidx, cval (d_in,); MODE_DENSE (2): the dense row
    (every pixel). shift (k, side, key, thr_in, warp): with warp != 0, the row's nonzeros
    warped by its random affine map of the step `key` (``_shift.row_warps``; cval[d_in:2 *
    d_in] is its all-zero scratch) and moved by its random shift of up to k pixels; else,
    with k > 0, moved by the shift alone (``_shift.row_shifts``); with thr_in > 0, the pixels
    that input dropout drops left out (``_shift.drop_nonzeros``); any of them into cidx, cval.
    """
    k, side, key, thr_in, warp = shift
    moved = k > 0 or warp != 0
    if mode == MODE_CSR:
        a, b = indptr[r], indptr[r + 1]
        if not moved and thr_in == 0:
            return indices[a:b], values[a:b], b - a
        src_idx, src_val, n_nz = indices[a:b], values[a:b], b - a
    else:
        row = values[r * d_in:(r + 1) * d_in]
        if mode == MODE_DENSE and not moved and thr_in == 0:
            return iota, row, d_in
        n_nz = gather_nonzeros(row, cidx, cval)
        if not moved and thr_in == 0:
            return cidx, cval, n_nz
        src_idx, src_val = cidx[:d_in], cval[:d_in]
    if moved:
        dy, dx = row_shifts(key, r, k)  # (0, 0) for k 0
        if warp != 0:
            n_nz = warp_nonzeros(src_idx, src_val, n_nz, dy, dx, row_warps(key, r, warp), side,
                                 cidx, cval, cval[d_in:2 * d_in])
        else:
            n_nz = shift_nonzeros(src_idx, src_val, n_nz, dy, dx, side, cidx, cval)
        src_idx, src_val = cidx[:d_in], cval[:d_in]
    if thr_in > 0:
        n_nz = drop_nonzeros(src_idx, src_val, n_nz, layer_key(key, r, 0), thr_in, cidx, cval)
    return cidx, cval, n_nz


@jit
def gather_nonzeros(row, cidx, cval):
    """The nonzero entries of row (d,): their indices into cidx, their values into cval
    (d,), in order; returns how many. Writes nothing past cidx[:d], cval[:d].

    A uint8 row, on the intrinsics' path, by vector instructions: 64 pixels at a time by
    vpcompressb where the CPU has AVX-512 VBMI2 (``_lanes.compress_nonzeros``), else 8 at a
    time by pshufb (``_lanes.shuffle_nonzeros``); any other row by :func:`gather_scalar`.
    """
    return _gather(row, cidx, cval)


def _gather(row, cidx, cval):
    """gather_nonzeros' body, chosen by the types (the overload below); Numba code only."""
    raise NotImplementedError


@overload(_gather, jit_options={"fastmath": _jit.FASTMATH})
def _gather_typed(row, cidx, cval):
    if PACKED and compress_takes(row, cidx, cval):
        return lambda row, cidx, cval: pack_nonzeros(row, cidx, cval)
    return lambda row, cidx, cval: gather_scalar(row, cidx, cval)


@jit
def gather_scalar(row, cidx, cval):
    """gather_nonzeros without vector instructions, for any row dtype.

    Branch-free: a zero's entry is overwritten by the next one's (a branch on each pixel
    mispredicts at every edge of a stroke). A uint8 row a whole number of 8-byte words long
    skips each zero word (eight dark pixels: most of an MNIST row's border) by one test:
    10,000 MNIST rows in 4.4 against 5.9 ms on one thread.
    """
    n_nz = 0
    if row.itemsize == 1 and row.shape[0] % 8 == 0:
        words = row.view(np.uint64)
        for j in range(words.shape[0]):
            if words[j] != 0:
                for k in range(j * 8, j * 8 + 8):
                    v = row[k]
                    cidx[n_nz] = k
                    cval[n_nz] = v
                    n_nz += v != 0
        return n_nz
    for k in range(row.shape[0]):
        v = row[k]
        cidx[n_nz] = k
        cval[n_nz] = v
        n_nz += v != 0
    return n_nz


@jit
def zero_fill(a):
    """a[:] = 0, one vectorized loop."""
    for i in range(a.shape[0]):
        a[i] = 0


@jit
def copy_into(src, dst, at, n):
    """dst[at:at + n] = src[:n], one vectorized loop (slice assignment copies elementwise)."""
    d = dst[at:at + n]
    for j in range(n):
        d[j] = src[j]


@jit
def _count_row(x_idx, n_nz, counts):
    """Count a row's pixels x_idx[:n_nz] into counts[pixel + 1] (the buckets' sizes)."""
    for q in range(n_nz):
        counts[x_idx[q] + 1] += 1


@jit
def _starts(counts, d_in):
    """counts (d_in + 1,) from each bucket's size (at pixel + 1) to where each starts."""
    for k in range(d_in):
        counts[k + 1] += counts[k]


@jit
def _file_row(i, x_idx, x_val, n_nz, buckets):
    """File row i's pixels (x_idx, x_val)[:n_nz] into the buckets (counts, e_row, e_val),
    counts[k] moving from bucket k's start to its end."""
    counts, e_row, e_val = buckets
    for q in range(n_nz):
        k = x_idx[q]
        e = counts[k]
        e_row[e] = i
        e_val[e] = x_val[q]
        counts[k] = e + 1


@jit
def bucket_block(rows, data, d_in, shift, cidx, cval, buckets):
    """The nonzeros of a block of rows (m <= BLOCK,) bucketed by pixel.

    data (mode, indptr, indices, values, iota, ...): the rows' input as ``row_input`` reads
    it (the backends' ``data`` tuple; what follows iota is not read); shift: ``row_input``'s;
    cidx, cval (d_in,): its pixel buffers. buckets (counts (d_in + 1,), e_row, e_val (BLOCK *
    d_in,)), written: bucket k is e_row[counts[k - 1]:counts[k]] (the rows, 0..m-1) and
    e_val[...] (their values), with counts[-1] read as 0.
    """
    mode, indptr, indices, values, iota = data[0], data[1], data[2], data[3], data[4]
    counts = buckets[0]
    m = rows.shape[0]
    counts[:] = 0
    for i in range(m):
        x_idx, x_val, n_nz = row_input(rows[i], mode, indptr, indices, values, iota, d_in,
                                       cidx, cval, shift)
        _count_row(x_idx, n_nz, counts)
    _starts(counts, d_in)
    for i in range(m):
        x_idx, x_val, n_nz = row_input(rows[i], mode, indptr, indices, values, iota, d_in,
                                       cidx, cval, shift)
        _file_row(i, x_idx, x_val, n_nz, buckets)


@jit
def bucket_staged(m, staged, d_in, buckets):
    """``bucket_block`` for m rows whose inputs are staged already: staged (s_idx, s_val
    (BLOCK * d_in,), s_n (BLOCK,)), row i's s_n[i] pixels at s_idx[i * d_in:], s_val[i *
    d_in:]; buckets as ``bucket_block``'s, written."""
    s_idx, s_val, s_n = staged
    counts = buckets[0]
    counts[:] = 0
    for i in range(m):
        _count_row(s_idx[i * d_in:], s_n[i], counts)
    _starts(counts, d_in)
    for i in range(m):
        _file_row(i, s_idx[i * d_in:], s_val[i * d_in:], s_n[i], buckets)


@jit
def bucket_backward(layer, m, d_in, scale, buckets, dz, g):
    """G[W1] += X_blk^T dZ_blk, G[b1] += dZ_blk.sum(0) from a block's buckets
    (counts, e_row, e_val: ``bucket_block``; their pixel values times scale) and its m rows'
    deltas dz (m * h,), into g (P,): each touched row of G[W1] updated once per block, four
    deltas per pass, instead of once per nonzero (for wide layers G[W1] lives in L2 and that
    read-modify-write traffic was the epoch's largest cost). layer (wo, bo, h): where W1
    (d_in, h) and b1 (h,) start in g."""
    wo, bo, h = layer
    counts, e_row, e_val = buckets
    start = 0
    for k in range(d_in):  # bucket k is e_row[start:counts[k]] now
        stop = counts[k]
        if stop > start:  # gw = gw + sum over the bucket of x * dz[row]: bias and output gw
            gw = g[wo + k * h:wo + (k + 1) * h]
            input_forward(dz, 0, gw, h, e_row[start:stop], e_val[start:stop], stop - start,
                           scale, False, gw)
        start = stop
    gb = g[bo:bo + h]
    for i in range(m):
        d = dz[i * h:(i + 1) * h]
        for j in range(h):
            gb[j] += d[j]


@jit
def _flush_range(a, lo, hi, thr):
    """a[lo:hi] with every entry below thr in magnitude set to 0 (NaN and infinity kept).

    A loop over a slice from 0, not over range(lo, hi): Numba cannot prove lo >= 0, and its
    negative-index handling stops the vectorizer (13 against 90 us for 203k floats)."""
    b = a[lo:hi]
    zero = thr * 0
    for i in range(b.shape[0]):
        v = b[i]
        b[i] = zero if abs(v) < thr else v


@jit
def _sweep(state, rule, lo, hi, g0, g1):
    """``update_range``'s optimizer step on flat[lo:hi] from the gradient g0 (hi - lo,), plus
    g1 (the same shape) when it is not None, clearing g0 as it is read.

    g1 None is a compile of its own, without g1's loads: the loops then vectorize. With one
    loop for both, a g1 that is g0 itself (a single gradient row) failed LLVM's run-time
    alias check and every optimizer ran its scalar loop (Adam: 3.4x slower a parameter).
    """
    flat, s1, s2 = state
    opt, lr, hp, wd, c1, c2, thr = rule
    n = hi - lo
    w = flat[lo:hi]
    if opt == 0:  # sgd
        for i in range(n):
            g = g0[i] if g1 is None else g0[i] + g1[i]
            w[i] -= lr * (g + wd * w[i])
            g0[i] = 0
    elif opt == 1:  # momentum (PyTorch's): v = mu v + g; w -= lr v
        mu = hp[0]
        m1 = s1[lo:hi]
        for i in range(n):
            g = g0[i] if g1 is None else g0[i] + g1[i]
            v = mu * m1[i] + (g + wd * w[i])
            m1[i] = v
            w[i] -= lr * v
            g0[i] = 0
    elif opt == 3:  # nesterov (PyTorch's): v = mu v + g; w -= lr (g + mu v)
        mu = hp[0]
        m1 = s1[lo:hi]
        for i in range(n):
            g = (g0[i] if g1 is None else g0[i] + g1[i]) + wd * w[i]
            v = mu * m1[i] + g
            m1[i] = v
            w[i] -= lr * (g + mu * v)
            g0[i] = 0
    else:  # adam
        b1, one_b1, b2, one_b2, eps, g_thr = hp[1], hp[2], hp[3], hp[4], hp[5], hp[6]
        m1, m2 = s1[lo:hi], s2[lo:hi]
        zero = g_thr - g_thr  # of the parameters' dtype (eps * 0 would be float64)
        for i in range(n):
            g = (g0[i] if g1 is None else g0[i] + g1[i]) + wd * w[i]
            g = zero if abs(g) < g_thr else g  # no subnormal g * g (NaN kept)
            m = b1 * m1[i] + one_b1 * g
            v = b2 * m2[i] + one_b2 * (g * g)
            m1[i] = m
            m2[i] = v
            w[i] -= lr * (m / c1) / (np.sqrt(v / c2) + eps)
            g0[i] = 0


@jit
def update_range(state, rule, G, T, lo, hi, own):
    """Apply the optimizer to flat[lo:hi] with the gradient summed over G[:T, lo:hi], and
    clear what it reads but one row.

    state (flat, s1, s2), (P,) each, updated in place: the parameters and the optimizer's
    state (s1 the momentum or Adam's first moment, s2 Adam's second; any array where the
    optimizer has none). rule (opt, lr, hp, wd, c1, c2, thr): the optimizer's code (0 SGD,
    1 momentum, 2 Adam, 3 Nesterov), the learning rate, hp (7,) in the parameters' dtype
    (momentum, beta1, 1 - beta1, beta2, 1 - beta2, eps, and the magnitude below which Adam
    takes a gradient as 0: ``optim.grad_flush_threshold``), the weight decay, Adam's bias
    corrections 1 - beta1^t and 1 - beta2^t, and the flush threshold: with thr > 0 the
    weights and the optimizer state of the range are then flushed below thr (see
    ``optim.flush_threshold``).

    With T = 2 the gradient is G[own] + G[1 - own] (the same bits in either order), G[own]
    cleared as it is read and G[1 - own] only read: a thread writes only the row it owns,
    the caller clears the other (``_reduce_update``). With T = 1 or T > 2 the rows are folded
    into G[0] in order and all cleared.
    """
    flat, s1, s2 = state
    opt, thr = rule[0], rule[6]
    two = T == 2
    g0 = G[own if two else 0, lo:hi]
    for u in range(1, 1 if two else T):
        gu = G[u, lo:hi]
        for i in range(hi - lo):
            g0[i] += gu[i]
            gu[i] = 0
    if two:
        _sweep(state, rule, lo, hi, g0, G[1 - own, lo:hi])
    else:
        _sweep(state, rule, lo, hi, g0, None)
    if thr > 0:
        _flush_range(flat, lo, hi, thr)
        if opt >= 1:
            _flush_range(s1, lo, hi, thr)
        if opt == 2:
            _flush_range(s2, lo, hi, thr)


@jit
def ema_step(ema, flat, a):
    """The exponential moving average of the weights, one step: ema (P,) += a * (flat - ema),
    a = 1 - decay."""
    for i in range(ema.shape[0]):
        ema[i] += a * (flat[i] - ema[i])


@jit
def max_norm_flat(flat, sizes, woff, c):
    """The max-norm constraint, in place: every unit's incoming weights (each column of each
    layer's W (d_in, d_out) in flat) scaled down to Euclidean norm c where longer."""
    for l in range(sizes.shape[0] - 1):
        d_in, d_out = sizes[l], sizes[l + 1]
        w = flat[woff[l]:woff[l] + d_in * d_out]
        sq = np.zeros(d_out, dtype=flat.dtype)
        for k in range(d_in):
            row = w[k * d_out:(k + 1) * d_out]
            for j in range(d_out):
                sq[j] += row[j] * row[j]
        over = False
        for j in range(d_out):
            if sq[j] > c * c:
                sq[j] = c / np.sqrt(sq[j])
                over = True
            else:
                sq[j] = 1
        if over:
            for k in range(d_in):
                row = w[k * d_out:(k + 1) * d_out]
                for j in range(d_out):
                    row[j] *= sq[j]


def index_dtype(d_in):
    """The dtype of pixel indices below d_in: 2 bytes when they fit."""
    return np.uint16 if d_in < 65536 else np.int32


def scale_for(values, dtype, scale=None):
    """The factor that turns `values` into inputs: `scale` (None: 1/255) for uint8, 1 for
    floats."""
    if values.dtype != np.uint8:
        return dtype.type(1)
    return dtype.type(SCALE if scale is None else scale)


#: alignment in bytes of the parameter, state and gradient vectors: a cache line, so that the
#: kernels' vector loads of a row of W (or G) do not straddle two lines (NumPy only promises
#: 16 bytes). Measured on the fast98 epoch, one thread: 0.50 s aligned, 0.56 s not.
ALIGN = 64


#: bytes between per-thread rows (two cache lines: the adjacent-line prefetchers of x86 CPUs
#: fetch lines in aligned pairs). Measured on 784-128-10 batches of 128 on 2 threads: with the
#: activation rows of the two threads 64 bytes apart, each thread's half took 195 us; with
#: them in separate pairs of lines, 171 us (157 us alone).
SEPARATION = 2 * ALIGN


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) whose data starts on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


#: NumPy advises the kernel to back its allocations of at least this many bytes with huge pages
HUGE_ADVISED = 1 << 22


def small_pages_empty(n, dtype):
    """np.empty(n, dtype) on pages not advised for huge pages (anonymous ``mmap``, POSIX).

    NumPy asks for huge pages on its allocations of 4 MB and more (``madvise``). Where the
    kernel's ``transparent_hugepage/defrag`` is ``madvise`` (the default of Linux), each first
    write into such an allocation may stop to compact memory for a huge page. The CSR of
    MNIST (28 MB) took 24-64 ms to fill in a fresh process that way, against 18-25 ms on
    plain pages, and 7.8 ms on pages already touched (2-vCPU AMD EPYC). Smaller arrays, and
    hosts without ``mmap``'s flags (Windows), get np.empty."""
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if nbytes < HUGE_ADVISED or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(n, dtype)
    pages = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(pages, dtype=dtype, count=n)


def stride(P, dtype):
    """The row length of a per-thread buffer such as G (T, stride): P rounded up to a whole
    number of SEPARATION-byte blocks, plus one block, so that no two threads' rows share a
    cache line or the line the CPU's adjacent-line prefetcher fetches with it."""
    per_block = SEPARATION // np.dtype(dtype).itemsize
    return (-(-P // per_block) + 1) * per_block
