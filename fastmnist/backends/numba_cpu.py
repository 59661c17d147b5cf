"""Numba backend: the NumPy reference's protocol as fused, compiled kernels.

Dimensions: ``n`` batch rows, ``d_in`` input features, ``d_out`` output features, ``C``
classes, ``L`` layers, ``P`` parameters in all, ``T`` threads.

Where the speed comes from (docs/performance.md tells the measurements behind each):

* Whole runs of optimizer steps in one compiled call (:func:`train_epoch`); no Python per step.
* Parameters travel as one flat vector ``flat (P,)``: layer ``l`` holds ``W_l`` row-major at
  ``woff[l]`` and ``b_l`` right after it. One sweep over it sums the per-thread gradients,
  adds weight decay and applies the optimizer (``_reduce_update``).
* uint8 pixels are read as bytes and scaled in registers; layer 1 skips zero pixels (81% of
  MNIST) by walking a CSR copy of the images (:func:`prepare`), in its forward pass and in
  its ``dW`` accumulation.
* Each row goes forward and backward in one pass while its pixels are in cache
  (``_row_forward_backward``); bias + ReLU are fused into the matmul's output loop, softmax
  + cross-entropy backward into one ``(p - onehot) / n``.
* A batch's rows are split in ``T`` fixed parts, one per thread the machine has
  (``_jit.n_parts``), each into its own gradient buffer ``G[t]``, summed in a fixed order: no
  races, and bit-identical results whatever the number of threads running the parts.
* A row's running sums stay in vector registers (the intrinsics of ``_lanes``): one 16-lane
  vector for layers at most LANES wide, 64 lanes per pass for wider ones; narrow ``dW`` rows
  are updated in exact pieces; softmax + its gradient is one vector for at most 16 classes.
  One hidden layer at most LANES wide (784-10-10) takes the written-out ``_row_narrow2``.
* A layer 1 wider than LANES goes in blocks of BLOCK rows per thread, its ``dW`` accumulated
  pixel by pixel (``_block_input_backward``): one update of each touched row of ``G[W1]``
  per block instead of one per nonzero pixel.
* On two threads each thread writes only its own row of G: the update reads the other row
  and leaves it for its owner to clear (``_reduce_update``, ``_zero_others``).
* Inputs at least GEMM_MIN_DENSITY nonzero (standardized features) are kept dense
  (``MODE_GEMM``) and each step's products run in NumPy's BLAS (``backends/gemm.py``).
* One hidden layer of at least 2 x ``columns.MIN_UNITS`` units on two or more cores is split
  by hidden units instead of rows (``backends/columns.py``): each thread owns its columns of
  ``W1`` and rows of ``W2``, so no weight or gradient line crosses cores, one parallel region
  per step.
"""

import threading

import numpy as np

from ..errors import InputError
from ..optim import Optimizer, flush_steps, flush_threshold, grad_flush_threshold
from . import (
    _jit,
    _plain,
    activation_code,
    check_ema,
    check_max_norm,
    check_smoothing,
    output_code,
)
from ._jit import (  # noqa: F401  (threads, n_threads: the protocol)
    borrow,
    jit,
    n_parts,
    n_threads,
    pjit,
    prange,
    threads,
)
from ._shift import layer_key
from .kernels import (  # noqa: F401  (ALIGN, SCALE, SEPARATION, MODE_*: its API)
    ALIGN,
    COMPRESS,
    FLUSH_LOGIT,
    MODE_CSR,
    MODE_DENSE,
    MODE_DENSE_SKIP,
    MODE_GEMM,
    PACKED,
    SCALE,
    SEPARATION,
    activate_in_place,
    aligned_zeros,
    bucket_backward,
    bucket_block,
    copy_into,
    dense_backward,
    drop_units,
    ema_step,
    gather_nonzeros,
    index_dtype,
    input_forward,
    logistic,
    max_norm_flat,
    output_grad,
    pack_nonzeros,
    prefetch_row,
    row_input,
    scale_for,
    small_pages_empty,
    softmax_row,
    stride,
    times_derivative,
    update_range,
    zero_fill,
)

if _jit.PATH == "lanes":
    from ._lanes import LANES, nz_dot, nz_outer, rows_dot, softmax_grad
else:
    from ._plain import LANES, nz_dot, nz_outer, rows_dot, softmax_grad

#: whether the kernels run on the LLVM vector intrinsics of ``_lanes`` (True) or on the plain
#: Numba loops of ``_plain`` (False: FASTMNIST_INTRINSICS=0, a CPU other than x86-64, or
#: intrinsics that failed to compile here)
INTRINSICS = _jit.PATH == "lanes"


#: :func:`prepare` keeps inputs at least this dense (the nonzero fraction of a sample of rows)
#: as dense rows for BLAS (MODE_GEMM) instead of a CSR of their nonzeros. Measured on MNIST
#: with its smallest entries zeroed, 784-128-10 and 784-10-10, Adam, batch 128: the two paths
#: break even at 30% nonzero; at 50% BLAS is 1.3-1.5x faster, at 91% (standardized) 1.7-1.9x.
GEMM_MIN_DENSITY = 0.35


#: elementwise kernels use threads above this many elements
_PAR_MIN = 1 << 16


# ---- small protocol kernels --------------------------------------------------------------

@jit
def _relu(z, out):
    """out = max(z, 0); z, out (n, d)."""
    for r in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[r, j]
            out[r, j] = v if v > 0 else v * 0


@pjit
def _relu_par(z, out):
    for r in prange(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[r, j]
            out[r, j] = v if v > 0 else v * 0


@jit
def _softmax(z, out):
    for r in range(z.shape[0]):
        softmax_row(z[r], out[r])


@pjit
def _softmax_par(z, out):
    for r in prange(z.shape[0]):
        softmax_row(z[r], out[r])


@pjit
def _activate_rows(z, act):
    for r in prange(z.shape[0]):
        if act == 0:
            for j in range(z.shape[1]):
                v = z[r, j]
                z[r, j] = v if v > 0 else v * 0
        else:
            activate_in_place(z[r], act)


@pjit
def _times_derivative_rows(da, a, act):
    for r in prange(da.shape[0]):
        times_derivative(da[r], a[r], act)


# ---- one row through the network: forward and backward side by side -------------------------


@jit
def input_backward(g, wo, bo, h, x_idx, x_val, n_nz, scale, dz):
    """G[W] += x (outer) dz over nonzero pixels, G[b] += dz; dz (h,)."""
    if h <= LANES:
        nz_outer(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz)
    else:
        _plain.outer_rows(g, wo, h, x_idx, x_val, n_nz, scale, bo, dz)


@jit
def _dense_forward(flat, wo, bo, d_in, d_out, a, relu, z):
    """z (d_out,) = b + a (d_in,) @ W (d_in, d_out); then ReLU if relu."""
    input_forward(flat, wo, flat[bo:bo + d_out], d_out, None, a, d_in, None, relu, z)


@jit
def _row_forward(flat, net, x, noise, acts):
    """Forward one row: acts[aoff[l]:aoff[l+1]] holds layer l+1's output, logits last.

    net (sizes, woff, aoff, act): the layer widths (L + 1,), the offsets of each W in flat
    (L,) and of each layer's output in acts (L + 1,), and the hidden activation's code
    (0 ReLU, fused into the matmuls). x (x_idx, x_val, n_nz, scale): the row's layer-1 input,
    its nonzero pixels as ``kernels.row_input`` gives them and their scale. noise (key, row,
    thr, s): with thr > 0, inverted dropout of the hidden outputs: unit j of hidden layer
    l + 1 kept (times s) where ``_shift.keeps(layer_key(key, row, l + 1), j, thr)``, else 0.
    """
    sizes, woff, aoff, act = net
    x_idx, x_val, n_nz, scale = x
    L = sizes.shape[0] - 1
    for l in range(L):
        d_in, d_out = sizes[l], sizes[l + 1]
        wo = woff[l]
        bo = wo + d_in * d_out
        z = acts[aoff[l]:aoff[l + 1]]
        hidden = l < L - 1
        relu = hidden and act == 0  # fused ReLU on every hidden layer
        if l == 0:
            input_forward(flat, wo, flat[bo:bo + d_out], d_out, x_idx, x_val, n_nz, scale,
                           relu, z)
        else:
            _dense_forward(flat, wo, bo, d_in, d_out, acts[aoff[l - 1]:aoff[l]], relu, z)
        if hidden and act != 0:
            activate_in_place(z, act)
        if hidden and noise[2] > 0:
            drop_units(z, layer_key(noise[0], noise[1], l + 1), noise[2], noise[3])


@jit
def _row_forward_backward(flat, net, x, target, lowest, noise, acts, deltas, g):
    """Forward and backward one row, adding its gradient (scaled by inv_n) into g (P,) for
    layers `lowest` and up (layer 0's delta is left in deltas[:sizes[1]] either way).

    net, x: the network and the row's input (``_row_forward``). target (label, inv_n, head,
    yrow, eps): head 0, softmax against the integer `label` (label smoothing eps); 1, 2,
    logistic or identity outputs against the target row yrow (C,) (``kernels._head_grad``);
    inv_n the row's weight in the step's mean. acts, deltas (sum of widths,): the row's
    activations and deltas, laid out by net's aoff. Returns (loss, 1 if the prediction is
    right else 0). noise: dropout of the hidden outputs (``_row_forward``; ReLU only: the
    backward takes the derivative from the dropped outputs, then times s).
    """
    sizes, woff, aoff, act = net
    x_idx, x_val, n_nz, scale = x
    label, inv_n, head, yrow, eps = target
    L = sizes.shape[0] - 1
    _row_forward(flat, net, x, noise, acts)
    loss, correct = output_grad(acts[aoff[L - 1]:aoff[L]], label, yrow, inv_n, head, eps,
                                deltas[aoff[L - 1]:aoff[L]])
    for l in range(L - 1, lowest - 1, -1):
        d_in, d_out = sizes[l], sizes[l + 1]
        wo = woff[l]
        bo = wo + d_in * d_out
        dz = deltas[aoff[l]:aoff[l + 1]]
        if l == 0:
            input_backward(g, wo, bo, d_out, x_idx, x_val, n_nz, scale, dz)
        else:
            a = acts[aoff[l - 1]:aoff[l]]
            da = deltas[aoff[l - 1]:aoff[l]]
            dense_backward(flat, g, wo, bo, d_in, d_out, a, dz, da, act)
            if noise[2] > 0:  # the dropped units' deltas are 0 already (a = 0)
                for j in range(da.shape[0]):
                    da[j] *= noise[3]
    return loss, correct


@jit
def _row_narrow2(flat, dims, x, label, inv_n, acts, deltas, g):
    """``_row_forward_backward`` for one hidden layer with h, c <= LANES (784-10-10), written
    out on the vector intrinsics: the generic loop over layers costs more than the row's
    arithmetic there (650 vs 290 cycles a row besides the pixels, measured). dims (d_in, h,
    c): the layer widths; x: the row's input (``_row_forward``); softmax against `label`,
    the gradient scaled by inv_n."""
    d_in, h, c = dims
    x_idx, x_val, n_nz, scale = x
    bo1 = d_in * h
    wo2 = bo1 + h
    bo2 = wo2 + h * c
    z1, z2 = acts[:h], acts[h:h + c]
    d1, d2 = deltas[:h], deltas[h:h + c]
    nz_dot(flat, 0, h, x_idx, x_val, n_nz, scale, flat[bo1:bo1 + h], True, z1)
    nz_dot(flat, wo2, c, None, z1, h, None, flat[bo2:bo2 + c], False, z2)
    s, mx, best = softmax_grad(z2, c, label, inv_n, FLUSH_LOGIT, d2)
    loss = np.log(s) + mx - z2[label]
    nz_outer(g, wo2, c, None, z1, h, None, bo2, d2)
    rows_dot(flat, wo2, c, h, d2, z1, d1)
    nz_outer(g, 0, h, x_idx, x_val, n_nz, scale, bo1, d1)
    return loss, 1 if best == label else 0


# ---- a batch, a step, a run of steps ------------------------------------------------------


@jit
def _no_shift():
    """The ``shift`` argument of ``row_input`` that leaves rows as they are."""
    return np.int64(0), np.int64(1), np.uint64(0), np.int64(0), np.int64(0)


def _no_draw(dtype):
    """The per-step draws of ``_batch_grads`` that change nothing: (shift k, side, key, input
    dropout threshold, hidden dropout threshold, hidden dropout scale, warp limits), typed as
    ``_run_steps`` passes them (one compiled ``_batch_grads`` serves both)."""
    return (np.int64(0), np.int64(1), np.uint64(0), np.int64(0), np.int64(0), dtype.type(1),
            np.int64(0))


#: rows per block of the pixel-major layer-1 backward (``_block_input_backward``)
BLOCK = 64


@jit
def _block_input_backward(layer, rows, data, d_in, shift, dz, cidx, cval, buckets, g):
    """G[W1] += X_blk^T dZ_blk and G[b1] += dZ_blk.sum(0) for a block of rows, pixel by pixel,
    into g (P,).

    layer (wo, bo, h): where W1 (d_in, h) and b1 (h,) start in g; rows (m <= BLOCK,): the
    block's rows of data (``_batch_grads``), their inputs moved by shift (``row_input``); dz
    (m * h,): their layer-1 deltas; cidx, cval: ``row_input``'s pixel buffers. The block's
    nonzeros are bucketed by pixel into buckets (counts, e_row, e_val: ``bucket_block``),
    then each touched row of G[W1] is updated once per block (``bucket_backward``).
    """
    bucket_block(rows, data, d_in, shift, cidx, cval, buckets)
    bucket_backward(layer, rows.shape[0], d_in, data[5], buckets, dz, g)


@pjit
def _batch_grads(flat, net, data, rows, inv_n, bufs, task, draw, loss_t, corr_t):
    """Forward + backward the batch `rows`, thread t's rows (a fixed chunk) into G[t] (P,).

    net (sizes, woff, aoff, act): the layer widths, the offsets of each layer's W in flat and
    of its activations in a row of A, and the hidden activation's code (0, ReLU, fused into
    the matmuls). data (mode, indptr, indices, values, iota, scale, y): the rows' input
    (``kernels.row_input``), its scale and the labels. bufs (G, A, D, CI, CV, wide, T,
    alone): A, D (T, sum of widths) per-thread activations and deltas; CI, CV (T, d_in)
    per-thread pixel buffers for MODE_DENSE_SKIP; wide: per-thread buffers of
    ``_block_input_backward`` (counts, e_row, e_val, dz), used when layer 1 is wider than
    LANES (the rows then go in blocks of BLOCK); T threads; alone: G is all zero (else, with
    two rows, each part first zeroes what ``_reduce_update`` left of its row; with more, the
    update left them all zero: it folds them into G[0]). task (head, Yt, sw, eps): the
    output's code (0 softmax against y; 1, 2 against the target rows Yt (n, C)) and the rows'
    weights sw (n,) (empty: all 1), which multiply each row's gradient and loss. loss_t,
    corr_t (T,): per-thread loss sums and right answers (two arguments, not in a tuple: see
    ``columns._step``). draw (k, side, key,
    thr_in, thr_hidden, s_hidden, warp): the step's random draws: shifts of up to k pixels,
    affine warps and input dropout (``row_input``), hidden dropout (``_row_forward``); see
    ``_no_draw``.
    """
    sizes, woff, aoff, act = net
    mode, indptr, indices, values, iota, scale, y = data
    G, A, D, CI, CV, wide, T, alone = bufs
    nb = rows.shape[0]
    d_in, h, c = sizes[0], sizes[1], sizes[-1]
    counts, e_row, e_val, dzs = wide
    by_block = h > LANES
    head, Yt, sw, eps = task
    weighted = sw.shape[0] > 0
    narrow2 = (sizes.shape[0] == 3 and h <= LANES and c <= LANES and act == 0 and head == 0
               and not weighted and eps == 0 and draw[4] == 0)
    shift = (draw[0], draw[1], draw[2], draw[3], draw[6])
    for t in prange(T):
        lt = 0.0
        ct = 0
        lo, hi = t * nb // T, (t + 1) * nb // T
        # every array the rows touch, borrowed: no reference counts shared between threads
        g, acts, deltas = borrow(G[t]), borrow(A[t]), borrow(D[t])
        cidx, cval = borrow(CI[t]), borrow(CV[t])
        fl, sz, wof, aof = borrow(flat), borrow(sizes), borrow(woff), borrow(aoff)
        ip, ix, vs, io = borrow(indptr), borrow(indices), borrow(values), borrow(iota)
        ys, rs, yt, sws = borrow(y), borrow(rows), borrow(Yt), borrow(sw)
        cnt, er, ev, dzt = borrow(counts[t]), borrow(e_row[t]), borrow(e_val[t]), borrow(dzs[t])
        nt, dat = (sz, wof, aof, act), (mode, ip, ix, vs, io, scale, ys)
        if not alone and G.shape[0] == 2:  # the update zeroed part t's own slices only
            _zero_others(g, t, 2, sz, wof)
        for b0 in range(lo, hi, BLOCK if by_block else max(1, hi - lo)):
            b1 = min(hi, b0 + BLOCK) if by_block else hi
            for i in range(b0, b1):
                r = rs[i]
                if mode == MODE_CSR and i + 2 < b1:  # shuffled rows: fetch ahead
                    prefetch_row(ip, ix, vs, rs[i + 1], rs[i + 2])
                x_idx, x_val, n_nz = row_input(r, mode, ip, ix, vs, io, d_in, cidx, cval,
                                               shift)
                x = (x_idx, x_val, n_nz, scale)
                if narrow2:
                    loss, ok = _row_narrow2(fl, (d_in, h, c), x, ys[r], inv_n, acts, deltas, g)
                else:
                    w_r = inv_n * sws[r] if weighted else inv_n
                    loss, ok = _row_forward_backward(
                        fl, nt, x, (ys[r], w_r, head, yt[r] if head != 0 else yt[0], eps),
                        1 if by_block else 0, (draw[2], r, draw[4], draw[5]), acts, deltas, g)
                    if weighted:
                        loss = loss * sws[r]
                if by_block:  # keep layer 1's delta for the block's backward
                    copy_into(deltas, dzt, (i - b0) * h, h)
                lt += loss
                ct += ok
            if by_block:
                _block_input_backward((wof[0], wof[0] + d_in * h, h), rs[b0:b1], dat, d_in,
                                      shift, dzt, cidx, cval, (cnt, er, ev), g)
        loss_t[t] = lt
        corr_t[t] = ct


@jit
def _slice_of(part, n_parts, lo, n):
    """[a, b): part `part` of n_parts equal slices of the range [lo, lo + n)."""
    return lo + part * n // n_parts, lo + (part + 1) * n // n_parts


@pjit
def _reduce_update(state, rule, G, T, layout, alone):
    """One sweep over the parameters: sum the T gradient buffers G[:T] (rows of P or more),
    add weight decay (weights only), apply the optimizer, flush below thr if thr > 0; split
    into one disjoint slice per layer for each of the G.shape[0] parts, one per thread.
    state (flat, s1, s2), updated in place, and rule (opt, lr, hp, wd, c1, c2, thr): see
    ``kernels.update_range``; layout (sizes, woff): the layer widths and the offsets of
    each W in flat.

    G is zero again afterwards, ready for the next step, but for one thing. With two rows
    (T = 2), part p clears only G[p]'s entries of its slices, the lines its own thread wrote
    and holds: clearing the other row too pulls its lines across cores (a 784-128-10 SGD
    epoch 10% slower on 2 threads of an Intel Xeon). Where another thread runs the other
    part, ``_batch_grads`` clears the rest of that row as the part starts
    (``_zero_others``); alone (one thread runs every part) the update clears it at once,
    while it is in cache (deferred, fast98 took 5-17% longer on one thread).
    """
    sizes, woff = layout
    opt, lr, hp, wd, c1, c2, thr = rule
    L = sizes.shape[0] - 1
    n_parts = G.shape[0]
    for part in prange(n_parts):
        own = part % 2
        for l in range(L):
            n_w = sizes[l] * sizes[l + 1]
            wo = woff[l]
            a, b = _slice_of(part, n_parts, wo, n_w)
            update_range(state, rule, G, T, a, b, own)
            if alone and T == 2:
                zero_fill(G[1 - own, a:b])
            a, b = _slice_of(part, n_parts, wo + n_w, sizes[l + 1])
            update_range(state, (opt, lr, hp, wd - wd, c1, c2, thr), G, T, a, b, own)
            if alone and T == 2:
                zero_fill(G[1 - own, a:b])


@jit
def _zero_others(g, t, n_parts, sizes, woff):
    """g (P,), part t's gradient buffer, zeroed over every slice ``_reduce_update`` gives to
    another part (the update zeroed part t's own)."""
    for l in range(sizes.shape[0] - 1):
        n_w = sizes[l] * sizes[l + 1]
        for u in range(n_parts):
            if u != t:
                a, b = _slice_of(u, n_parts, woff[l], n_w)
                zero_fill(g[a:b])
                a, b = _slice_of(u, n_parts, woff[l] + n_w, sizes[l + 1])
                zero_fill(g[a:b])


@jit
def _run_steps(params, net, data, order, batch_size, sched, bufs, task, aug, losses):
    """len(lrs) optimizer steps over `order` in batches, all in one compiled call.

    params (flat, s1, s2, optimizer code): the weights and the optimizer's state; net, data,
    bufs and task: see ``_batch_grads``. sched (lrs, inv_ns, c1s, c2s, hps, wds, thrs, wsum),
    per step: the learning rate, 1 / the rows' weight, the bias corrections, the optimizer's
    hyperparameters (n_steps, 6; ``update_range``), the weight decay, the flush threshold
    and what the summed loss is divided by (the rows, or their weights). After step s, the
    weights and optimizer state are flushed below thrs[s] when it is > 0 (no subnormals:
    ``optim.flush_threshold``, ``optim.flush_steps``). Returns (steps run, right answers);
    stops before updating at a non-finite loss. bufs' alone: one thread runs the parts (who
    zeroes G: ``_reduce_update``). aug (k, side, keys
    (n_steps,) uint64, max_norm, thr_in, thr_hidden, s_hidden): random shifts of up to k pixels
    of side x side images, drawn with the key of each step (k 0: none), the max-norm
    constraint applied after each update (``max_norm_flat``; 0: none), and dropout
    (``_batch_grads``'s draw; thresholds 0: none); then s_in (unused here), the weights'
    moving average ema (P,) and 1 - its decay (``ema_step`` after each update; 0: none); last,
    the affine warps' packed limits (``augment.Affine.packed``; 0: none).
    """
    flat, s1, s2, opt = params
    sizes, woff = net[0], net[1]
    lrs, inv_ns, c1s, c2s, hps, wds, thrs, wsum = sched
    G, A, D, CI, CV, wide, T, alone = bufs
    m = order.shape[0]
    loss_t = np.zeros(T)
    corr_t = np.zeros(T, dtype=np.int64)
    n_correct = 0
    for s in range(lrs.shape[0]):
        lo = s * batch_size
        hi = min(lo + batch_size, m)
        Ts = min(T, hi - lo)
        _batch_grads(flat, net, data, order[lo:hi], inv_ns[s],
                     (G, A, D, CI, CV, wide, Ts, alone), task,
                     (aug[0], aug[1], aug[2][s], aug[4], aug[5], aug[6], aug[10]),
                     loss_t, corr_t)
        loss = loss_t[:Ts].sum() / wsum[s]
        losses[s] = loss
        if not np.isfinite(loss):
            return s + 1, n_correct
        n_correct += corr_t[:Ts].sum()
        _reduce_update((flat, s1, s2), (opt, lrs[s], hps[s], wds[s], c1s[s], c2s[s], thrs[s]),
                       G, Ts, (sizes, woff), alone)
        if aug[3] > 0:
            max_norm_flat(flat, sizes, woff, aug[3])
        if aug[9] > 0:
            ema_step(aug[8], flat, aug[9])
    return lrs.shape[0], n_correct


def max_norm(params, c):
    """Scale, in place, every unit's incoming weights (each column of every W) down to
    Euclidean norm c where they are longer (the max-norm constraint of ``fit``)."""
    dtype = _check_params(params)
    sizes, woff, P = _layout(params)
    flat = _flatten(params, dtype, P)
    max_norm_flat(flat, sizes, woff, dtype.type(c))
    _unflatten(flat, params)


@pjit
def _forward_rows(flat, net, data, head, bufs, out):
    """Outputs out (n, C) for every row (head 0 softmax, 1 logistic, 2 identity), threads
    over fixed row chunks. net (sizes, woff, aoff, act): see ``_row_forward``; data (mode,
    indptr, indices, values, iota, scale, y): the rows' input (``_batch_grads``; y not
    read); bufs (A, CI, CV, T): per-thread activations A (T, sum of widths) and pixel
    buffers CI, CV (T, d_in; ``row_input``), T threads."""
    sizes, aoff = net[0], net[2]
    mode, indptr, indices, values, iota, scale = (data[0], data[1], data[2], data[3],
                                                   data[4], data[5])
    A, CI, CV, T = bufs
    n = out.shape[0]
    L = sizes.shape[0] - 1
    d_in = sizes[0]
    for t in prange(T):
        acts = A[t]
        for r in range(t * n // T, (t + 1) * n // T):
            x_idx, x_val, n_nz = row_input(r, mode, indptr, indices, values, iota, d_in,
                                           CI[t], CV[t], _no_shift())
            _row_forward(flat, net, (x_idx, x_val, n_nz, scale),
                         (np.uint64(0), r, np.int64(0), 1.0), acts)
            p = acts[aoff[L - 1]:aoff[L]]
            if head == 0:
                softmax_row(p, out[r])
            else:
                o = out[r]
                for j in range(p.shape[0]):
                    o[j] = logistic(p[j]) if head == 1 else p[j]


@jit
def _infer_row(ws, bs, x, act, head, a, b, out):
    """One row through the network given layer by layer, ws[l] = W_l (d_l * d_l+1,) and
    bs[l] (tuples: no flattened copy of the weights), its layer-1 input x (x_idx, x_val,
    n_nz, scale) as nonzero pixels (``_row_forward``); hidden outputs alternate between a
    and b (width,), the output head's values into out (C,)."""
    x_idx, x_val, n_nz, scale = x
    L = len(ws)
    src = a
    for l in range(L):
        d_out = bs[l].shape[0]
        dst = a if l % 2 == 0 else b
        z = dst[:d_out]
        hidden = l < L - 1
        if l == 0:
            input_forward(ws[0], 0, bs[0], d_out, x_idx, x_val, n_nz, scale,
                           hidden and act == 0, z)
        else:
            d_in = bs[l - 1].shape[0]
            input_forward(ws[l], 0, bs[l], d_out, None, src[:d_in], d_in, None,
                           hidden and act == 0, z)
        if hidden and act != 0:
            activate_in_place(z, act)
        src = dst
    p = src[:out.shape[0]]
    if head == 0:
        softmax_row(p, out)
    else:
        for j in range(p.shape[0]):
            out[j] = logistic(p[j]) if head == 1 else p[j]


@jit
def _infer_rows(ws, bs, x, lo, hi, scale, act, head, out):
    """out[lo:hi] (C each) for the dense rows x[lo:hi] (n, d) uint8 or float, zero inputs
    skipped (each row's nonzeros gathered first)."""
    d = x.shape[1]
    width = 1
    for l in range(len(bs)):
        width = max(width, bs[l].shape[0])
    a = np.empty(width, dtype=out.dtype)
    b = np.empty(width, dtype=out.dtype)
    cidx = np.empty(d, dtype=np.int32)
    cval = np.empty(d, dtype=x.dtype)
    for r in range(lo, hi):
        n_nz = gather_nonzeros(x[r], cidx, cval)
        _infer_row(ws, bs, (cidx, cval, n_nz, scale), act, head, a, b, out[r])


#: rows below which ``forward`` runs on the calling thread (a parallel region costs more)
_SERIAL_ROWS = 64


# ---- CSR of the images, built once per dataset ---------------------------------------------

@pjit
def _csr_count(X, counts):
    for r in prange(X.shape[0]):
        c = 0
        for k in range(X.shape[1]):
            if X[r, k] != 0:
                c += 1
        counts[r] = c


@pjit
def _csr_fill(X, indptr, indices, values):
    for r in prange(X.shape[0]):
        q = indptr[r]
        for k in range(X.shape[1]):
            if X[r, k] != 0:
                indices[q] = k
                values[q] = X[r, k]
                q += 1


@pjit
def _csr_fill_words(X, words, indptr, indices, values):
    """``_csr_fill`` for uint8 rows a whole number of 8-byte words wide, read also as the
    words (n * d / 8,) uint64: a zero word (eight dark pixels: most of an MNIST row's border)
    is skipped by one test, and the pixels of the others are written without a branch on
    their value (a zero pixel's stores are overwritten by the next nonzero one; the
    ``q < end`` guard keeps them inside the row). A branch on each pixel mispredicts at every
    edge of a stroke: 36 against 23 ms for MNIST's 60,000 rows on one thread (a table of
    each byte mask's positions, copying popcount entries, took 28-32 ms)."""
    n, d = X.shape
    per_row = d // 8
    for r in prange(n):
        q, end = indptr[r], indptr[r + 1]
        row = X[r]
        w = words[r * per_row:(r + 1) * per_row]
        for j in range(per_row):
            if w[j] != 0:
                for k in range(j * 8, j * 8 + 8):
                    if q < end:
                        v = row[k]
                        indices[q] = k
                        values[q] = v
                        q += v != 0


@pjit
def _csr_fill_packed(X, indptr, indices, values):
    """``_csr_fill`` for uint8 rows on the intrinsics' path: each row's nonzeros packed
    straight into its CSR slices by vpcompressb, 64 pixels at a time, or by pshufb, 8 at a
    time (``kernels.gather_nonzeros``' vector loops, which write nothing past a slice; called
    directly, so that slices they do not take are a typing error, not the scalar loop's one
    write past the slice into the next row's). MNIST's 60,000 rows on two threads of an AMD
    EPYC (Zen 5): 7.3 ms by vpcompressb against 9.8 ms for ``_csr_fill_words``."""
    for r in prange(X.shape[0]):
        a, b = indptr[r], indptr[r + 1]
        pack_nonzeros(X[r], indices[a:b], values[a:b])


@pjit
def _fingerprint(words, T, out):
    """Two 64-bit sums over words (n,) uint64 into out (T, 2), one row per part: sum of
    w_i * (2i + 1) and of (w_i ^ i) * golden; any change of one word changes the first (an
    odd factor is invertible mod 2^64). Vectorized: about memory speed."""
    n = words.shape[0]
    golden = np.uint64(0x9E3779B97F4A7C15)
    for t in prange(T):
        lo = t * n // T
        chunk = words[lo:(t + 1) * n // T]
        a = np.uint64(0)
        b = np.uint64(0)
        for i in range(chunk.shape[0]):
            w = chunk[i]
            k = np.uint64(lo + i)
            a += w * (k + k + np.uint64(1))
            b += (w ^ k) * golden
        out[t, 0] = a
        out[t, 1] = b


# ---- Python side: validation, flattening, buffers --------------------------------------------


class Prepared:
    """Layer-1 input of a dataset, ready for the kernels (:func:`prepare`).

    mode MODE_CSR: ``indptr (n + 1,)``, ``indices (nnz,)``, ``values (nnz,)`` of the nonzero
    pixels; MODE_DENSE / MODE_DENSE_SKIP: ``values`` is the images flattened, ``(n * d_in,)``.
    ``scale``: what uint8 values are multiplied by (None: 1/255); floats are used as given.
    """

    def __init__(self, mode, n_rows, d_in, values, indptr=None, indices=None, scale=None):
        self.mode, self.n_rows, self.d_in = mode, n_rows, d_in
        self.scale = scale  # the factor of uint8 values; None: 1/255
        self.values = values
        idx_dtype = index_dtype(d_in)
        self.iota = np.arange(d_in, dtype=idx_dtype)
        self.indptr = np.zeros(1, np.int64) if indptr is None else indptr
        self.indices = self.iota[:0] if indices is None else indices

    def __len__(self):
        return self.n_rows

    def nbytes(self):
        return self.values.nbytes + self.indptr.nbytes + self.indices.nbytes


def prepare(x, mode=None, scale=None):
    """Layer-1 input for :func:`train_epoch`: a CSR of the nonzero pixels (uint8 kept), or,
    for inputs at least GEMM_MIN_DENSITY nonzero, the dense rows for BLAS (MODE_GEMM).

    x (n, d_in) uint8 or float. ``mode`` (None: chosen by density) MODE_CSR forces the CSR;
    MODE_DENSE keeps the dense rows (every pixel multiplied, for measuring what skipping zeros
    buys); MODE_DENSE_SKIP gathers each row's nonzeros on the fly; MODE_GEMM the dense rows
    for BLAS. ``scale``: the factor uint8 x is multiplied by (None: 1/255).
    """
    if isinstance(x, Prepared):
        return x
    x = np.ascontiguousarray(x)
    n, d_in = x.shape
    if mode is None:
        mode = MODE_GEMM if density(x) >= GEMM_MIN_DENSITY else MODE_CSR
    if mode != MODE_CSR:
        return Prepared(mode, n, d_in, writable(x).reshape(-1), scale=scale)
    key = _reuse_key(x, scale)
    if key is not None:
        fingerprint = _fingerprint_of(x)
        last = _LAST.get("entry")
        if last is not None and last[0] == key and last[1] == fingerprint and last[2]() is x:
            return last[3]
    data = _build_csr(x, scale)
    if key is not None:
        import weakref
        try:
            ref = weakref.ref(x, _forget)
        except TypeError:  # an array type without weak references: no reuse
            _LAST.pop("entry", None)
        else:
            _LAST["entry"] = (key, fingerprint, ref, data)
    return data


def density(x, sample=1024):
    """The fraction of nonzero entries of x (n, d), counted on at most `sample` rows spread
    evenly over it (0 for an empty x)."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0
    rows = x[::max(1, len(x) // sample)]
    return np.count_nonzero(rows) / rows.size


def _forget(ref):
    """Drop the kept CSR when its array is collected (not a newer entry's)."""
    entry = _LAST.get("entry")
    if entry is not None and entry[2] is ref:
        _LAST.pop("entry", None)


#: the last CSR :func:`prepare` built: (key, fingerprint, weak reference to the array,
#: Prepared). A ``fit`` on the same array, its contents unchanged, reuses it.
_LAST = {}

#: arrays smaller than this are prepared afresh every time (reuse would save little)
REUSE_MIN_BYTES = 1 << 20


def _reuse_key(x, scale):
    """What must match for a CSR to be reused (None: never reuse this array)."""
    if x.nbytes < REUSE_MIN_BYTES or x.nbytes % 8:
        return None
    return (id(x), x.ctypes.data, x.shape, x.dtype.str, scale)


def _fingerprint_of(x):
    """The array's contents as two 64-bit sums (``_fingerprint``): 2 ms for MNIST's 47 MB on
    2 threads, against 12 ms to build its CSR. An in-place change of the array changes it
    (with probability 1 - 2^-64 for any change of several words)."""
    T = n_parts(max(1, x.nbytes >> 20))
    out = np.zeros((T, 2), dtype=np.uint64)
    _fingerprint(x.reshape(-1).view(np.uint64), T, out)
    return tuple(int(v) for v in out.reshape(-1))


def _build_csr(x, scale):
    """The CSR of x's nonzero entries (Prepared in MODE_CSR)."""
    n, d_in = x.shape
    counts = np.empty(n, dtype=np.int64)
    _csr_count(x, counts)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx_dtype = index_dtype(d_in)
    indices = small_pages_empty(int(indptr[-1]), idx_dtype)
    values = small_pages_empty(int(indptr[-1]), x.dtype)
    if x.dtype == np.uint8 and PACKED and np.dtype(idx_dtype).itemsize in (2, 4):
        _csr_fill_packed(x, indptr, indices, values)
    elif x.dtype == np.uint8 and d_in % 8 == 0:
        _csr_fill_words(x, x.reshape(-1).view(np.uint64), indptr, indices, values)
    else:
        _csr_fill(x, indptr, indices, values)
    return Prepared(MODE_CSR, n, d_in, values, indptr, indices, scale)


def prepare_csr(indptr, indices, values, d_in, scale=None):
    """Layer-1 input from a CSR matrix's arrays (e.g. scipy.sparse.csr_matrix), without
    making it dense: indptr (n + 1,), indices (nnz,), values (nnz,) uint8 or float (zeros
    stored explicitly are harmless)."""
    indptr = writable(np.asarray(indptr, dtype=np.int64))
    indices = writable(np.asarray(indices, dtype=index_dtype(d_in)))
    values = writable(values)
    return Prepared(MODE_CSR, len(indptr) - 1, int(d_in), values, indptr, indices, scale)


def _layout(params):
    """sizes (L + 1,), woff (L,) offsets of each W in the flat vector, P."""
    sizes = np.array([params[0][0].shape[0]] + [W.shape[1] for W, _ in params], dtype=np.int64)
    woff = np.zeros(len(params), dtype=np.int64)
    off = 0
    for i, (W, b) in enumerate(params):
        woff[i] = off
        off += W.size + b.size
    return sizes, woff, off


def _flatten(pairs, dtype, P):
    """The (W, b) pairs one after another in a cache-line-aligned (P,) vector."""
    flat = aligned_zeros(P, dtype)
    off = 0
    for W, b in pairs:
        flat[off:off + W.size] = W.reshape(-1)
        off += W.size
        flat[off:off + b.size] = b
        off += b.size
    return flat


def _unflatten(flat, pairs):
    off = 0
    for W, b in pairs:
        W.reshape(-1)[:] = flat[off:off + W.size]
        off += W.size
        b[:] = flat[off:off + b.size]
        off += b.size


def _check_params(params):
    if not params:
        raise InputError("params is empty")
    dtype = params[0][0].dtype
    if dtype not in (np.float32, np.float64):
        raise InputError(f"parameters must be float32 or float64, got {dtype}")
    prev = params[0][0].shape[0]
    for i, (W, b) in enumerate(params):
        if W.dtype != dtype or b.dtype != dtype:
            raise InputError(f"layer {i}: W and b must both be {dtype}")
        if W.ndim != 2 or W.shape[0] != prev or b.shape != (W.shape[1],):
            raise InputError(f"layer {i}: W {W.shape} and b {b.shape} do not chain")
        prev = W.shape[1]
    return dtype


def _wide_buffers(sizes, T, dtype, values_dtype):
    """Per-thread buffers of the blocked layer-1 backward (``_block_input_backward``):
    counts (T, d_in + 1), e_row (T, BLOCK * d_in), e_val, dz (T, BLOCK * h); empty (one
    element per thread) when layer 1 is narrow enough to go row by row."""
    d_in, h = int(sizes[0]), int(sizes[1])
    n = BLOCK * d_in if h > LANES else 1
    return (aligned_zeros((T, stride(d_in + 1 if h > LANES else 1, np.int64)), np.int64),
            aligned_zeros((T, stride(n, np.uint8)), np.uint8),
            aligned_zeros((T, stride(n, values_dtype)), values_dtype),
            aligned_zeros((T, stride(BLOCK * h if h > LANES else 1, dtype)), dtype))


def _buffers(sizes, T, dtype, d_in, values_dtype):
    """Per-thread activations/deltas A, D (T, sum widths), offsets aoff, pixel buffers."""
    aoff = np.zeros(len(sizes), dtype=np.int64)
    aoff[1:] = np.cumsum(sizes[1:])
    width = stride(aoff[-1], dtype)  # each thread's row on its own cache lines
    A = aligned_zeros((T, width), dtype)
    D = aligned_zeros((T, width), dtype)
    idx_dtype = index_dtype(d_in)
    CI = aligned_zeros((T, stride(d_in, idx_dtype)), idx_dtype)
    CV = aligned_zeros((T, stride(2 * d_in, values_dtype)), values_dtype)  # + warps' scratch
    return aoff, A, D, CI, CV


def _input(x, dtype, d_in, mode=MODE_DENSE_SKIP):
    """x (n, d_in) -> Prepared in `mode` (MODE_DENSE_SKIP or MODE_CSR): uint8 kept, anything
    else cast to `dtype`."""
    if isinstance(x, Prepared):
        return x
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d_in:
        raise InputError(f"x must be (n, {d_in}), got shape {x.shape}")
    if x.dtype != np.uint8:
        x = x.astype(dtype, copy=False)
    return prepare(x, mode=mode)


def writable(a):
    """`a` C-contiguous and writable, copied only when it is not.

    Numba compiles a kernel again for each new argument type, and a read-only array (an
    ``np.memmap`` opened read-only, ``setflags(write=False)``, a view of ``bytes``) is a
    type of its own: without the copy, the first read-only input would cost the user a
    second compile of every kernel it reaches (about 25 s for ``_run_steps``)."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def _labels(y, n, classes):
    """y as (n,) int64 labels, each in [0, classes): the kernels index the logits by them."""
    y = writable(np.asarray(y, dtype=np.int64))
    if y.shape != (n,):
        raise InputError(f"y must be ({n},), got shape {y.shape}")
    if n and not (0 <= y.min() and y.max() < classes):
        raise InputError(f"labels must be in [0, {classes}) for {classes} outputs, got "
                         f"{y.min()}..{y.max()}")
    return y


# ---- the protocol ---------------------------------------------------------------------------

def relu(z):
    """a (n, d) = max(z, 0), elementwise; NaN stays NaN."""
    z = np.ascontiguousarray(z)
    z2 = z.reshape(-1, z.shape[-1]) if z.ndim != 2 else z
    out = np.empty_like(z2)
    (_relu_par if z2.size >= _PAR_MIN else _relu)(z2, out)
    return out.reshape(z.shape)


def activate(z, activation):
    """a (n, d) = f(z) for the hidden activation f (name or code): relu, tanh, logistic,
    identity (a copy of z)."""
    act = activation_code(activation)
    out = np.array(z, order="C", copy=True)
    _activate_rows(out.reshape(-1, out.shape[-1]) if out.ndim != 2 else out, act)
    return out


def activate_backward(da, a, activation):
    """dz (n, d) = da * f'(z), from the activation's output a = f(z) (n, d)."""
    act = activation_code(activation)
    out = np.array(da, order="C", copy=True)
    a = np.ascontiguousarray(a, dtype=out.dtype)
    _times_derivative_rows(out, a, act)
    return out


def softmax(z):
    """p (n, C): row-wise softmax of z (n, C), shifted by the row max (no overflow)."""
    z = np.ascontiguousarray(z)
    out = np.empty_like(z)
    (_softmax_par if z.size >= _PAR_MIN else _softmax)(z, out)
    return out


def linear(x, W, b):
    """z (n, d_out) = x @ W + b. x (n, d_in) uint8 (scaled by 1/255, zero pixels skipped)
    or float; float x goes to BLAS, which is as fast as it gets for dense inputs."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        return np.asarray(x, dtype=W.dtype) @ W + b
    W = np.ascontiguousarray(W)
    b = np.ascontiguousarray(b, dtype=W.dtype)
    d_in, d_out = W.shape
    if x.ndim != 2 or x.shape[1] != d_in or b.shape != (d_out,):
        raise InputError(f"linear: x {x.shape}, W {W.shape} and b {b.shape} do not fit")
    x = np.ascontiguousarray(x)
    T = max(1, min(n_threads(), len(x)))
    idx_dtype = index_dtype(d_in)
    # per-thread nonzero pixels of the current row
    CI = aligned_zeros((T, stride(d_in, idx_dtype)), idx_dtype)
    CV = aligned_zeros((T, stride(d_in, np.uint8)), np.uint8)
    out = np.empty((len(x), d_out), dtype=W.dtype)
    # W used in place (no flattened copy): a kernel call costs what its rows cost
    _linear_rows(W.reshape(-1), b, x.reshape(-1), scale_for(x, W.dtype), d_in, CI, CV, out, T)
    return out


@pjit
def _linear_rows(w, b, values, scale, d_in, CI, CV, out, T):
    """out (n, d_out) = b + (uint8 rows of values * scale) @ W, W as w (d_in * d_out,)."""
    n, d_out = out.shape
    for t in prange(T):
        for r in range(t * n // T, (t + 1) * n // T):
            n_nz = gather_nonzeros(values[r * d_in:(r + 1) * d_in], CI[t], CV[t])
            input_forward(w, 0, b, d_out, CI[t], CV[t], n_nz, scale, False, out[r])


def forward(params, x, activation="relu", output="softmax"):
    """Class probabilities (n, C) of the network `params` (list of (W, b)) on x (n, d_in)
    (uint8, float, or the result of :func:`prepare`); hidden layers use `activation`, the
    last `output` ("softmax", "logistic" or "identity")."""
    act = activation_code(activation)
    head = output_code(output)
    dtype = _check_params(params)
    if not isinstance(x, Prepared):
        return _forward_dense(params, x, dtype, act, head)
    return _forward_prepared(params, x, dtype, act, head)


def _forward_prepared(params, data, dtype, act, head):
    """:func:`forward` of a :class:`Prepared` input, rows on threads (``_forward_rows``)."""
    sizes, woff, P = _layout(params)
    flat = _flatten(params, dtype, P)
    data = _input(data, dtype, sizes[0])
    T = n_parts(len(data))
    aoff, A, _, CI, CV = _buffers(sizes, T, dtype, sizes[0], data.values.dtype)
    out = np.empty((len(data), sizes[-1]), dtype=dtype)
    _forward_rows(flat, (sizes, woff, aoff, act),
                  _data(data, scale_for(data.values, dtype, data.scale), None), head,
                  (A, CI, CV, T), out)
    return out


def _forward_dense(params, x, dtype, act, head):
    """:func:`forward` of rows x (n, d_in), uint8 or float. Fewer than _SERIAL_ROWS rows run
    on the calling thread by ``_infer_rows``, the layers used in place (a flattened copy of
    the weights would cost a single image more than its arithmetic). More rows run as a
    :class:`Prepared` in MODE_DENSE_SKIP (no copy of x), each row's nonzeros gathered on the
    fly, with the weights copied into the 64-byte-aligned flat layout: weight rows that
    straddle cache lines made 10,000 MNIST rows 1.35x slower."""
    x = np.asarray(x)
    d_in = params[0][0].shape[0]
    if x.ndim != 2 or x.shape[1] != d_in:
        raise InputError(f"x must be (n, {d_in}), got shape {x.shape}")
    x = writable(x if x.dtype == np.uint8 else x.astype(dtype, copy=False))
    if len(x) >= _SERIAL_ROWS:
        return _forward_prepared(params, prepare(x, mode=MODE_DENSE_SKIP), dtype, act, head)
    ws = tuple([np.ascontiguousarray(W).reshape(-1) for W, _ in params])
    bs = tuple([np.ascontiguousarray(b) for _, b in params])
    out = np.empty((len(x), len(bs[-1])), dtype=dtype)
    _infer_rows(ws, bs, x, 0, len(x), scale_for(x, dtype, None), act, head, out)
    return out


def _task(head, y, n, classes, dtype, sample_weight, label_smoothing=0.0):
    """(labels (n,) int64, task tuple of the kernels) for integer labels in [0, classes)
    (head 0) or target rows y (n, classes) (heads 1, 2), optional sample weights (n,), and
    the label smoothing of head 0 (``optim.check_smoothing``)."""
    eps = check_smoothing(label_smoothing, head)
    if head == 0:
        labels = _labels(y, n, classes)
        Yt = np.zeros((1, 1), dtype=dtype)
    else:
        Yt = writable(np.asarray(y, dtype=dtype))
        if Yt.shape != (n, classes):
            raise InputError(f"y must be ({n}, {classes}) targets, got shape {Yt.shape}")
        labels = np.zeros(n, dtype=np.int64)
    sw = (np.zeros(0, dtype=dtype) if sample_weight is None
          else writable(np.asarray(sample_weight, dtype=dtype)))
    if sample_weight is not None and sw.shape != (n,):
        raise InputError(f"sample_weight must be ({n},), got shape {sw.shape}")
    return labels, (np.int64(head), Yt, sw, dtype.type(eps))


#: the calling thread's work buffers of its last batch (``_workspace``)
_WORK = threading.local()


def _workspace(sizes, P, T, dtype, values_dtype):
    """(key, (aoff, A, D, CI, CV, G, wide)): the per-thread buffers of ``_batch_grads`` for
    this network, G zero. Taken from the calling Python thread's last batch of the same
    shapes when there is one (fresh buffers cost page faults: on a 784-128-10 batch of 128
    rows, more than the batch's arithmetic); hand them back with :func:`_keep` once G is zero
    again (a call that fails does not, and the next one allocates anew)."""
    key = (tuple(sizes.tolist()), T, np.dtype(dtype), np.dtype(values_dtype))
    last = getattr(_WORK, "grads", None)
    _WORK.grads = None
    if last is not None and last[0] == key:
        return last
    aoff, A, D, CI, CV = _buffers(sizes, T, dtype, sizes[0], values_dtype)
    G = aligned_zeros((T, stride(P, dtype)), dtype)
    return key, (aoff, A, D, CI, CV, G, _wide_buffers(sizes, T, dtype, values_dtype))


def _keep(work):
    """Keep ``_workspace``'s buffers, G zero again, for the calling thread's next batch."""
    _WORK.grads = work


def _grads(params, x, y, act=0, head=0, sample_weight=None, label_smoothing=0.0):
    """(loss, G (T, P) with the summed gradient in G.sum(0), sizes, woff, flat, T, work):
    ``work`` from :func:`_workspace`, for :func:`_keep` once G is zero again."""
    dtype = _check_params(params)
    sizes, woff, P = _layout(params)
    flat = _flatten(params, dtype, P)
    # a layer 1 wider than LANES walks each row's nonzeros three times (forward, then its
    # blocked backward counts and fills buckets): gathered once into a CSR, not three times
    data = _input(x, dtype, sizes[0], MODE_CSR if sizes[1] > LANES else MODE_DENSE_SKIP)
    if len(data) == 0:
        raise InputError("empty batch")
    y, task = _task(head, y, len(data), sizes[-1], dtype, sample_weight, label_smoothing)
    total = len(data) if sample_weight is None else float(np.sum(task[2], dtype=np.float64))
    T = n_parts(len(data))
    work = _workspace(sizes, P, T, dtype, data.values.dtype)
    aoff, A, D, CI, CV, G, wide = work[1]
    loss_t, corr_t = np.zeros(T), np.zeros(T, dtype=np.int64)
    rows = np.arange(len(data), dtype=np.int64)
    scale = scale_for(data.values, dtype, data.scale)
    _batch_grads(flat, (sizes, woff, aoff, act), _data(data, scale, y), rows,
                 dtype.type(1.0 / total), (G, A, D, CI, CV, wide, T, True), task,
                 _no_draw(dtype), loss_t, corr_t)
    return loss_t.sum() / total, G, sizes, woff, flat, T, work


def loss_and_grads(params, x, y, activation="relu", output="softmax", sample_weight=None,
                   label_smoothing=0.0):
    """Mean loss of the network on (x, y) and its gradients.

    Parameters
    ----------
    params : list of (W (d_in, d_out), b (d_out,)), float32 or float64
    x : ndarray (n, d_in), uint8 (scaled by 1/255) or float
    y : ndarray (n,) of integer labels in [0, C) (softmax), or (n, C) targets
    activation : {"relu", "tanh", "logistic", "identity"} or its code, of the hidden layers
    output : {"softmax", "logistic", "identity"}
        The last layer and its loss: cross-entropy, binary cross-entropy summed over the
        outputs, or half the squared error averaged over the outputs.
    sample_weight : ndarray (n,) or None
        Row weights; the loss and gradients are then weighted means.
    label_smoothing : float in [0, 1)
        Softmax only: the cross-entropy against (1 - label_smoothing) onehot(y) +
        label_smoothing / C.

    Returns
    -------
    loss : float
    grads : list of (dW (d_in, d_out), db (d_out,))
    """
    loss, G, sizes, woff, flat, T, work = _grads(params, x, y, activation_code(activation),
                                                 output_code(output), sample_weight,
                                                 label_smoothing)
    P = len(flat)
    g = G[0, :P]
    for u in range(1, T):  # fixed order: deterministic for a fixed thread count
        g += G[u, :P]
    grads = [(np.empty_like(W), np.empty_like(b)) for W, b in params]
    _unflatten(g, grads)
    G[:T, :P] = 0
    _keep(work)
    return float(loss), grads


def _hyper(opt, dtype):
    """The optimizer's hyperparameters (7,) as update_range reads them, in `dtype`."""
    return np.array([opt.momentum, opt.beta1, 1 - opt.beta1, opt.beta2, 1 - opt.beta2, opt.eps,
                     grad_flush_threshold(opt, dtype)], dtype=dtype)


def _hypers(opt, dtype, t):
    """The hyperparameters of the steps t (n_steps,), (n_steps, 7): eps per step (Adam's
    ``Optimizer.eps_at``), the rest constant."""
    hps = np.tile(_hyper(opt, dtype), (len(t), 1))
    hps[:, 5] = opt.eps_at(t).astype(dtype)
    return hps


def train_step(params, x, y, lr):
    """One SGD step in place (W -= lr * dW, b -= lr * db); returns the loss before it."""
    loss, G, sizes, woff, flat, T, work = _grads(params, x, y)
    dtype = flat.dtype
    hp = _hyper(Optimizer("sgd"), dtype)
    _reduce_update((flat, flat[:1], flat[:1]),
                   (0, dtype.type(lr), hp, dtype.type(0), dtype.type(1), dtype.type(1),
                    dtype.type(flush_threshold(Optimizer("sgd"), dtype))),
                   G, T, (sizes, woff), True)
    _keep(work)  # the update left G zero
    _unflatten(flat, params)
    return float(loss)


def _step_sums(counts, order, batch_size, sample_weight):
    """What each step's loss and gradient are divided by (n_steps,) float64: its rows, or the
    sum of their weights."""
    if sample_weight is None:
        return counts.astype(np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)[order]
    return np.add.reduceat(w, np.arange(0, len(order), batch_size))


def _by_units(sizes, max_norm, thr_hidden):
    """Whether ``train_epoch`` splits its steps by hidden units (:func:`.columns.applies`)."""
    from . import columns
    return columns.applies(sizes, n_parts(sizes[1]), max_norm, thr_hidden)


def _data(data, scale, y):
    """The kernels' ``data`` tuple (mode, indptr, indices, values, iota, scale, y) of the
    Prepared rows `data`, their pixels' scale and the labels y (n,) int64 (None where no
    kernel reads them: ``_forward_rows``)."""
    return data.mode, data.indptr, data.indices, data.values, data.iota, scale, y


def _run_by_units(params, net, data, scale, y, order, batch_size, sched, task, aug, losses):
    """``train_epoch``'s steps split by hidden units (:mod:`.columns`): W1 and its state in
    the parts' column blocks for the run, in place, and back after it. params (flat, s1, s2,
    ema, 1 - its decay, optimizer code); net (sizes, woff, P, act)."""
    from . import columns
    flat, s1, s2, ema, a_ema, opt = params
    sizes, woff, P, act = net
    d_in, h = int(sizes[0]), int(sizes[1])
    cut = columns.cuts(h, n_parts(h))
    blocked = [v for v in (flat, s1, s2, ema) if len(v) == P]
    for v in blocked:
        columns.to_blocks(v, d_in, h, cut)
    try:
        return columns.run_steps(
            params, (sizes, woff, cut, act),
            _data(data, scale, y), order, batch_size, sched,
            columns.buffers(sizes, P, min(batch_size, len(order)), flat.dtype,
                            data.values.dtype, cut),
            task, (aug[0], aug[1], aug[2], aug[4], aug[10]), losses)
    finally:
        for v in blocked:
            columns.from_blocks(v, d_in, h, cut)


def train_epoch(params, state, opt, data, y, order, batch_size, lrs, t0, activation="relu",
                output="softmax", sample_weight=None, l2=None, shift=None, label_smoothing=0.0,
                max_norm=0.0, dropout=None, ema=None, ema_decay=0.0):
    """Run ``len(lrs)`` optimizer steps over the rows ``order`` in one compiled call.

    Same contract as :func:`fastmnist.backends.numpy_ref.train_epoch`; `data` is the
    result of :func:`prepare` (or a raw array, prepared here).
    """
    act = activation_code(activation)
    head = output_code(output)
    dtype = _check_params(params)
    sizes, woff, P = _layout(params)
    if not isinstance(data, Prepared):
        data = prepare(data if data.dtype == np.uint8 else data.astype(dtype, copy=False))
    order = writable(np.asarray(order, dtype=np.int64))
    y, task = _task(head, y, len(data), sizes[-1], dtype, sample_weight, label_smoothing)
    lrs = np.asarray(lrs, dtype=np.float64)
    with np.errstate(over="ignore"):  # an absurd lr becomes inf: divergence, reported later
        lrs_t = lrs.astype(dtype)
    n_steps = len(lrs)
    if n_steps != -(-len(order) // batch_size):
        raise InputError(f"{n_steps} learning rates for {len(order)} rows in batches of "
                         f"{batch_size}")
    flat = _flatten(params, dtype, P)
    s1 = _flatten(state[0], dtype, P) if len(state) > 0 else flat[:1]
    s2 = _flatten(state[1], dtype, P) if len(state) > 1 else flat[:1]
    steps = np.arange(n_steps)
    counts = np.minimum(batch_size, len(order) - steps * batch_size)
    wsum = _step_sums(counts, order, batch_size, sample_weight)
    inv_ns = (1.0 / wsum).astype(dtype)
    wds = np.full(n_steps, opt.weight_decay, dtype=dtype) if l2 is None else (
        l2 / wsum).astype(dtype)
    t = t0 + 1 + steps
    c1s = (1 - opt.beta1 ** t).astype(dtype)
    c2s = (1 - opt.beta2 ** t).astype(dtype)
    losses = np.empty(n_steps)
    thrs = np.where(flush_steps(t0, n_steps), flush_threshold(opt, dtype), 0).astype(dtype)
    # random shifts: (k, side, the key of each step; k 0 moves nothing) and the max-norm
    # and dropout (thresholds 0: none; the input's scale folded into the pixels' scale)
    keys = (shift.keys(t) if shift is not None else dropout.keys(t) if dropout is not None
            else np.zeros(n_steps, np.uint64))
    thr_in, thr_hid = (0, 0) if dropout is None else dropout.thresholds()
    s_in = 1.0 if dropout is None else 1.0 / (1.0 - dropout.p_in)
    s_hid = 1.0 if dropout is None else 1.0 / (1.0 - dropout.p_hidden)
    aug = ((np.int64(0), np.int64(1), keys) if shift is None else
           (np.int64(shift.k), np.int64(shift.side), keys))
    aug = aug + (dtype.type(check_max_norm(max_norm)), np.int64(thr_in), np.int64(thr_hid),
                 dtype.type(s_hid), s_in)
    ema_flat = _flatten(ema, dtype, P) if ema is not None else flat[:1]
    aug = aug + (ema_flat, dtype.type(0 if ema is None else 1 - check_ema(ema_decay)),
                 np.int64(0 if shift is None else shift.warp))
    pixel_scale = dtype.type(scale_for(data.values, dtype, data.scale) * s_in)
    if data.mode == MODE_GEMM:
        from . import gemm
        done, n_correct = gemm.train_steps(
            flat, (s1, s2), (sizes, woff, P), data, y, order, batch_size,
            (lrs_t, inv_ns, c1s, c2s, opt.code, _hypers(opt, dtype, t), wds, thrs, wsum,
             losses), act, task, aug)
    elif _by_units(sizes, aug[3], thr_hid):
        done, n_correct = _run_by_units(
            (flat, s1, s2, ema_flat, aug[9], opt.code), (sizes, woff, P, act), data, pixel_scale, y,
            order, batch_size, (lrs_t, inv_ns, c1s, c2s, _hypers(opt, dtype, t), wds, thrs,
                                wsum), task, aug, losses)
    else:
        T = n_parts(batch_size)
        aoff, A, D, CI, CV = _buffers(sizes, T, dtype, sizes[0], data.values.dtype)
        G = aligned_zeros((T, stride(P, dtype)), dtype)
        done, n_correct = _run_steps(
            (flat, s1, s2, opt.code), (sizes, woff, aoff, act), _data(data, pixel_scale, y),
            order, batch_size, (lrs_t, inv_ns, c1s, c2s, _hypers(opt, dtype, t), wds, thrs, wsum),
            (G, A, D, CI, CV, _wide_buffers(sizes, T, dtype, data.values.dtype), T,
             n_threads() == 1), task, aug, losses)
    _unflatten(flat, params)
    if len(state) > 0:
        _unflatten(s1, state[0])
    if len(state) > 1:
        _unflatten(s2, state[1])
    if ema is not None:
        _unflatten(ema_flat, ema)
    return losses[:done], int(n_correct)
