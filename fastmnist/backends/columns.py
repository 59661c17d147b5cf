"""The Numba backend's steps for one wide hidden layer on several threads: each thread owns
a slice of the hidden units (model parallelism), not a slice of the batch's rows.

Shapes: ``B`` rows in a step, ``d_in`` features, ``H`` hidden units, ``C`` outputs, ``T``
parts (one per thread the machine has), part ``t`` owning the units ``cut[t]:cut[t + 1]``
(``h_t`` of them).

Split by rows (``numba_cpu._batch_grads`` then ``_reduce_update``), each thread runs half the
batch through all of ``W1`` into a gradient buffer of its own; the update then sums the two
buffers, each thread rewriting half of ``W1``, which the other thread reads at the next step.
About half of ``W1`` and of the gradient cross between the cores every step, and a 784-128-10
epoch ran 1.2-1.5x faster on two threads than on one (Intel Xeon). Split by units:

* part ``t`` owns its columns of ``W1`` (stored as one contiguous ``(d_in, h_t)`` block: the
  blocked layout of :func:`to_blocks`), its entries of ``b1``, its rows of ``W2`` (contiguous
  already), the same slices of the gradient and of the optimizer state, and ``b2`` for the
  last part;
* every part runs every row of the batch: the forward of its units and its share of the
  logits, ``a1[:, units] @ W2[units, :]`` (B, C);
* then, in the next parallel region, every part adds the parts' shares in a fixed order (with
  ``b2``), takes the output's gradient (the same on every part), backpropagates into its own
  units (``dW2``'s rows, ``dz1``, and ``dW1`` pixel by pixel, as
  ``numba_cpu._block_input_backward``), updates its own parameters (nothing to sum: no other
  part wrote their gradient), and runs the forward of the next step's batch.

So one parallel region per step instead of two, and only the shares of the logits (B * C
values) cross between the cores. The results do not depend on ``threads=``: the parts are
fixed per machine (``_jit.n_parts``) and a thread that runs several does each alone.
"""

import numpy as np

from ._jit import borrow, jit, pjit, prange
from ._sync import fetch_add
from .kernels import (
    LANES,
    MODE_CSR,
    MODE_DENSE_SKIP,
    activate_in_place,
    add_transposed,
    aligned_zeros,
    bucket_backward,
    bucket_block,
    bucket_staged,
    copy_into,
    ema_step,
    index_dtype,
    input_forward,
    outer_block,
    output_grad,
    prefetch_row,
    row_input,
    stride,
    transpose_into,
    transposed_backward,
    update_range,
    zero_fill,
)
from .numba_cpu import BLOCK

#: the fewest hidden units a part may own: a narrower layer (784-10-10) is split by rows
MIN_UNITS = 32


def cuts(h, T):
    """Where the T parts of h hidden units start and stop (T + 1,) int64: as equal as whole
    vectors of LANES units allow, so that each part's block of ``W1`` starts on a cache line."""
    cut = np.array([round(t * h / T / LANES) * LANES for t in range(T + 1)], dtype=np.int64)
    cut[-1] = h
    return cut


def applies(sizes, T, max_norm, thr_hidden):
    """Whether a run takes the split by units: one hidden layer, at least two parts of at
    least MIN_UNITS units each, no max-norm (it reads whole columns of ``W2``), no hidden
    dropout."""
    if len(sizes) != 3 or T < 2 or max_norm > 0 or thr_hidden > 0:
        return False
    return int(np.diff(cuts(int(sizes[1]), T)).min()) >= MIN_UNITS


def to_blocks(flat, d_in, h, cut):
    """flat's W1 (d_in, h), row-major at flat[:d_in * h], rewritten in place as the parts'
    column blocks one after another: part t's (d_in, h_t) block at flat[d_in * cut[t]:]."""
    w = flat[:d_in * h].reshape(d_in, h).copy()
    for t in range(len(cut) - 1):
        flat[d_in * cut[t]:d_in * cut[t + 1]] = w[:, cut[t]:cut[t + 1]].reshape(-1)


def from_blocks(flat, d_in, h, cut):
    """The inverse of :func:`to_blocks`, in place."""
    blocks = flat[:d_in * h].copy()
    w = flat[:d_in * h].reshape(d_in, h)
    for t in range(len(cut) - 1):
        w[:, cut[t]:cut[t + 1]] = blocks[d_in * cut[t]:d_in * cut[t + 1]].reshape(d_in, -1)


def buffers(sizes, P, batch_size, dtype, values_dtype, cut):
    """The work buffers.

    One row per part: G (T, P) gradients (part t writes only its own slices of G[t]), Z (T,
    B * max h_t) its units' outputs, S (T, 2, B * C) its shares of the logits, R (T, 3 *
    _lane_pad(C) + (2 C + 1) max h_t + C * BLOCK) scratch (``_scratch``), DZ (T, BLOCK *
    max h_t) a block's deltas of its units, pixel buffers CI, CV (T, d_in; CV twice that, see
    ``kernels.row_input``), a block's staged inputs (SI, SV (T, BLOCK * d_in), SN (T, BLOCK):
    ``_forward_part``). Shared: the buckets (KC, KR, KV) of each block of a batch
    (``kernels.bucket_block``; 2 * n_blocks rows). S and the buckets hold two steps' worth
    (see ``_step``). Last, the counter of the blocks claimed for bucketing (8,) int64, a
    cache line of its own (``_bucket_claimed``; zeroed before each step).
    """
    T = len(cut) - 1
    d_in, c = int(sizes[0]), int(sizes[2])
    h_max = int(np.diff(cut).max())
    n_blocks = -(-batch_size // BLOCK)

    def rows(n, dt=dtype, k=T):  # each row on cache lines of its own
        return aligned_zeros((k, stride(n, dt)), dt)

    buckets = (rows(d_in + 1, np.int64, 2 * n_blocks),
               rows(BLOCK * d_in, np.uint8, 2 * n_blocks),
               rows(BLOCK * d_in, values_dtype, 2 * n_blocks))
    return (rows(P), rows(batch_size * h_max), rows(2 * stride(batch_size * c, dtype)),
            rows(3 * _lane_pad(c) + (2 * c + 1) * h_max + c * BLOCK), rows(BLOCK * h_max),
            rows(d_in, index_dtype(d_in)), rows(2 * d_in, values_dtype), buckets,
            (rows(BLOCK * d_in, index_dtype(d_in)), rows(BLOCK * d_in, values_dtype),
             rows(BLOCK, np.int64)), aligned_zeros((8,), np.int64))


@jit
def _lane_pad(c):
    """c rounded up to whole vectors of LANES."""
    return (c + LANES - 1) // LANES * LANES


@jit
def _scratch(r_t, c, ht):
    """Part t's scratch r_t: per row (logits (C,), their gradient (C,), zeros (C,), the
    gradient of its units' outputs (h_t,)), the first four on a vector boundary; per step
    its rows of W2 transposed (C, h_t) and their gradient, transposed (C, h_t); per block
    the rows' logit gradients, transposed (C, BLOCK)."""
    cs = _lane_pad(c)
    at = 3 * cs + ht
    bt = at + 2 * c * ht
    return (r_t[:c], r_t[cs:cs + c], r_t[2 * cs:2 * cs + c], r_t[3 * cs:at],
            r_t[at:at + c * ht], r_t[at + c * ht:bt], r_t[bt:bt + c * BLOCK])


@jit
def _stages(mode, draw):
    """Whether a part keeps the rows' inputs of its blocks as its forward makes them, for
    their buckets (``_forward_part``): when making them costs work (rows gathered from dense
    rows, shifted, warped or dropped out), not when they are the CSR rows themselves."""
    k, _, _, thr_in, warp = draw
    return mode == MODE_DENSE_SKIP or k > 0 or thr_in > 0 or warp != 0


@jit
def _forward_part(fl, net, t, data, rows, draw, bufs, stage):
    """Part t's forward of the rows `rows` (m,): z_t[i * h_t:] its units' outputs (h_t,) of
    row i, s_t[i * C:] its share of row i's logits (C,), b2 included in the last part's.
    draw: ``row_input``'s shift; bufs (z_t, s_t, r_t, cidx, cval). stage (whether, T, the
    buckets, their first row k0, SI_t, SV_t, SN_t): if so, the inputs of part t's blocks (t,
    t + T, ...: ``_bucket_part``'s) are kept as they are made and bucketed from there into
    the buckets' rows k0 + block, so that each row's input is made once per part, not three
    times (a shift, a warp or a gather each cost a 784-256-10 epoch 0.1-0.4 s)."""
    sizes, woff, cut, act = net
    mode, ip, ix, vs, io, scale, _ = data
    z_t, s_t, r_t, cidx, cval = bufs
    staged, T, buckets, k0, si, sv, sn = stage
    KC, KR, KV = buckets
    d_in, h, c = sizes[0], sizes[1], sizes[2]
    lo, hi = cut[t], cut[t + 1]
    ht = hi - lo
    bo1 = woff[0] + d_in * h
    wo2 = bo1 + h
    b1 = fl[bo1 + lo:bo1 + hi]
    # b2 goes into the last part's share only: the backward then never reads b2, which the
    # last part may update before another part is done reading the logits
    b2 = fl[wo2 + h * c:wo2 + h * c + c] if t == cut.shape[0] - 2 else _scratch(r_t, c, ht)[2]
    m = rows.shape[0]
    for i in range(m):
        if mode == MODE_CSR and i + 2 < m:  # shuffled rows: fetch ahead
            prefetch_row(ip, ix, vs, rows[i + 1], rows[i + 2])
        x_idx, x_val, n_nz = row_input(rows[i], mode, ip, ix, vs, io, d_in, cidx, cval, draw)
        a = z_t[i * ht:(i + 1) * ht]
        input_forward(fl, woff[0] + d_in * lo, b1, ht, x_idx, x_val, n_nz, scale, act == 0, a)
        if act != 0:
            activate_in_place(a, act)
        input_forward(fl, wo2 + lo * c, b2, c, None, a, ht, None, False,
                      s_t[i * c:(i + 1) * c])
        if staged and (i // BLOCK) % T == t:  # a row of one of part t's blocks
            j = i % BLOCK
            copy_into(x_idx, si, j * d_in, n_nz)
            copy_into(x_val, sv, j * d_in, n_nz)
            sn[j] = n_nz
            if j == BLOCK - 1 or i == m - 1:  # the block's last row
                k = k0 + i // BLOCK
                bucket_staged(j + 1, (si, sv, sn), d_in,
                              (borrow(KC[k]), borrow(KR[k]), borrow(KV[k])))


@jit
def _bucket_part(t, T, d_in, data, rows, draw, buckets, k0, cidx, cval):
    """Part t's share of bucketing the rows' blocks by pixel (``kernels.bucket_block``):
    blocks t, t + T, ... into the buckets' rows k0 + block."""
    for b in range(t, (rows.shape[0] + BLOCK - 1) // BLOCK, T):
        _bucket_one(b, d_in, data, rows, draw, buckets, k0, cidx, cval)


@jit
def _bucket_claimed(d_in, data, rows, draw, buckets, k0, cidx, cval, claim):
    """Bucket the rows' blocks that no thread has claimed yet, one at a time, claiming each
    from the counter claim[0] (zero before the step): a thread that is done with its part's
    forward takes the next block, so that the first one free does the bucketing (a batch
    of 64 is one block: its bucketing, about a tenth of a step, had always been part 0's,
    whichever thread was behind)."""
    n_blocks = (rows.shape[0] + BLOCK - 1) // BLOCK
    while True:
        b = fetch_add(claim, 0, 1)
        if b >= n_blocks:
            return
        _bucket_one(b, d_in, data, rows, draw, buckets, k0, cidx, cval)


@jit
def _bucket_one(b, d_in, data, rows, draw, buckets, k0, cidx, cval):
    """Block b of the rows bucketed by pixel into the buckets' row k0 + b."""
    KC, KR, KV = buckets
    m = rows.shape[0]
    b0 = b * BLOCK
    bucket_block(rows[b0:min(m, b0 + BLOCK)], data, d_in, draw, cidx, cval,
                 (borrow(KC[k0 + b]), borrow(KR[k0 + b]), borrow(KV[k0 + b])))


@jit
def _backward_part(fl, g, net, t, data, rows, task, inv_n, bufs):
    """Part t's backward of the rows `rows` (m,) into its slices of g (P,), from the shares of
    the logits of every part S[:, at:] (T, B * C), its units' outputs z_t and the batch's
    buckets; returns (summed loss, right answers) over the rows (the same on every part).
    bufs (S, at, z_t, r_t, dz_t, the buckets (KC, KR, KV), the batch's first row of them)."""
    sizes, woff, cut, act = net
    scale, y = data[5], data[6]
    S, at, z_t, r_t, dzs, buckets, k0 = bufs
    KC, KR, KV = buckets
    head, Yt, sw, eps = task
    weighted = sw.shape[0] > 0
    d_in, h, c = sizes[0], sizes[1], sizes[2]
    T = S.shape[0]
    lo, hi = cut[t], cut[t + 1]
    ht = hi - lo
    wo1 = woff[0] + d_in * lo
    bo1 = woff[0] + d_in * h
    wo2 = bo1 + h
    bo2 = wo2 + h * c
    p, dz2, _, da, w2t, dw2t, dz2t = _scratch(r_t, c, ht)
    transpose_into(fl, wo2 + lo * c, ht, c, w2t)  # layer 2's backward runs along the units
    zero_fill(dw2t)
    gb2 = g[bo2:bo2 + c]
    m = rows.shape[0]
    loss_sum = 0.0
    right = 0
    for b0 in range(0, m, BLOCK):
        b1 = min(m, b0 + BLOCK)
        for i in range(b0, b1):
            r = rows[i]
            copy_into(S[0, at + i * c:], p, 0, c)  # the logits: the parts' shares in a fixed order
            for u in range(1, T):
                s = S[u, at + i * c:at + (i + 1) * c]
                for j in range(c):
                    p[j] += s[j]
            w_r = inv_n * sw[r] if weighted else inv_n
            loss, ok = output_grad(p, y[r], Yt[r] if head != 0 else Yt[0], w_r, head, eps,
                                   dz2)
            loss_sum += loss * sw[r] if weighted else loss
            right += ok
            transposed_backward(w2t, ht, c, z_t[i * ht:(i + 1) * ht], dz2, da, act)
            for j in range(c):
                gb2[j] += dz2[j]
                dz2t[j * BLOCK + i - b0] = dz2[j]
            copy_into(da, dzs, (i - b0) * ht, ht)
        outer_block(dw2t, ht, c, z_t, b0 * ht, dz2t, b1 - b0)
        k = k0 + b0 // BLOCK
        bucket_backward((wo1, bo1 + lo, ht), b1 - b0, d_in, scale,
                        (borrow(KC[k]), borrow(KR[k]), borrow(KV[k])), dzs, g)
    add_transposed(dw2t, g, wo2 + lo * c, ht, c)
    return loss_sum, right


@jit
def _update_part(fl, state, G, net, t, step):
    """Part t's optimizer step on its own parameters, from its own gradient row G[t:t + 1]
    (cleared as it is read; ``kernels.update_range``), then the weights' moving average
    of those parameters. state (s1, s2, ema, 1 - its decay, optimizer code); step (lr, c1,
    c2, hp, wd, thr)."""
    sizes, woff, cut, act = net
    s1, s2, ema, a_ema, opt = state
    lr, c1, c2, hp, wd, thr = step
    d_in, h, c = sizes[0], sizes[1], sizes[2]
    T = cut.shape[0] - 1
    lo, hi = cut[t], cut[t + 1]
    bo1 = woff[0] + d_in * h
    wo2 = bo1 + h
    bo2 = wo2 + h * c
    g = G[t:t + 1]
    zero = wd - wd
    for a, b, decay in ((woff[0] + d_in * lo, woff[0] + d_in * hi, wd),
                        (bo1 + lo, bo1 + hi, zero), (wo2 + lo * c, wo2 + hi * c, wd),
                        (bo2, bo2 + c, zero)):
        if b == bo2 + c and t != T - 1:  # b2 is the last part's; the others' copy is dropped
            zero_fill(G[t, a:b])
            continue
        update_range((fl, s1, s2), (opt, lr, hp, decay, c1, c2, thr), g, 1, a, b, 0)
        if a_ema > 0:
            ema_step(ema[a:b], fl[a:b], a_ema)


@pjit
def _step(params, net, data, batch, step, bufs, task, loss_t, corr_t):
    """One parallel region: part t's backward and update of the step's rows (when there are
    any), then its forward of the next step's rows, then the bucketing of the next rows'
    blocks, each block by the first thread free to claim it (``_bucket_claimed``; claim[0],
    zeroed before the step, counts the blocks claimed). batch (rows, draw, next rows, their draw,
    which half of S holds the rows' shares of the logits): the next rows' shares go to the
    other half, so that a part that starts the next forward early does not overwrite shares
    another part is still reading; step (inv_n, (lr, c1, c2, hp, wd, thr)); loss_t, corr_t
    (T,): each part's loss sum and right answers, the same on every part (two arguments, not
    a tuple: Numba 0.68 loses a parallel loop's writes to an array taken out of a tuple
    argument). The update is skipped when the loss is not finite."""
    flat, s1, s2, ema, a_ema, opt = params
    G, Z, S, R, DZ, CI, CV, buckets, (SI, SV, SN), claim = bufs
    rows, draw, nxt, draw_next, half = batch
    at = half * (S.shape[1] // 2)
    at_next = (1 - half) * (S.shape[1] // 2)
    n_blocks = buckets[0].shape[0] // 2
    d_in = net[0][0]
    inv_n, rule = step
    T = S.shape[0]
    for t in prange(T):
        fl, g = borrow(flat), borrow(G[t])
        z_t, s_t, r_t = borrow(Z[t]), borrow(S[t, at_next:]), borrow(R[t])
        cidx, cval = borrow(CI[t]), borrow(CV[t])
        loss, right = 0.0, 0
        if rows.shape[0] > 0:
            loss, right = _backward_part(
                fl, g, net, t, data, borrow(rows), task, inv_n,
                (borrow(S), at, z_t, r_t, borrow(DZ[t]), buckets, half * n_blocks))
        finite = np.isfinite(loss)
        if rows.shape[0] > 0 and finite:
            _update_part(fl, (s1, s2, ema, a_ema, opt), borrow(G), net, t, rule)
        loss_t[t] = loss
        corr_t[t] = right
        if nxt.shape[0] > 0 and finite:
            k0 = (1 - half) * n_blocks
            staged = _stages(data[0], draw_next)
            _forward_part(fl, net, t, data, borrow(nxt), draw_next, (z_t, s_t, r_t, cidx, cval),
                          (staged, T, buckets, k0, borrow(SI[t]), borrow(SV[t]), borrow(SN[t])))
            if not staged:
                _bucket_claimed(d_in, data, borrow(nxt), draw_next, buckets, k0, cidx, cval,
                                claim)


@jit
def run_steps(params, net, data, order, batch_size, sched, bufs, task, aug, losses):
    """``numba_cpu._run_steps`` split by units: len(lrs) optimizer steps over `order` in
    batches; returns (steps run, right answers), stopping before the update at a non-finite
    loss. sched (lrs, inv_ns, c1s, c2s, hps, wds, thrs, wsum) per step; aug (k, side, keys,
    thr_in, warp): each step's random shifts, input dropout and affine warps."""
    lrs, inv_ns, c1s, c2s, hps, wds, thrs, wsum = sched
    k, side, keys, thr_in, warp = aug
    T = bufs[2].shape[0]
    loss_t = np.zeros(T)
    corr_t = np.zeros(T, dtype=np.int64)
    m = order.shape[0]
    n_steps = lrs.shape[0]
    none = order[:0]
    n_correct = 0
    first = order[:min(batch_size, m)]
    claim = bufs[-1]
    claim[0] = 0
    _step(params, net, data, (none, (k, side, keys[0], thr_in, warp), first,
                              (k, side, keys[0], thr_in, warp), 1),
          (inv_ns[0], (lrs[0], c1s[0], c2s[0], hps[0], wds[0], thrs[0])), bufs, task,
          loss_t, corr_t)
    for s in range(n_steps):
        lo = s * batch_size
        hi = min(lo + batch_size, m)
        nxt = order[hi:min(hi + batch_size, m)]
        s_next = min(s + 1, n_steps - 1)
        claim[0] = 0
        _step(params, net, data,
              (order[lo:hi], (k, side, keys[s], thr_in, warp), nxt,
               (k, side, keys[s_next], thr_in, warp),
               s % 2),
              (inv_ns[s], (lrs[s], c1s[s], c2s[s], hps[s], wds[s], thrs[s])), bufs, task,
              loss_t, corr_t)
        loss = loss_t[0] / wsum[s]
        losses[s] = loss
        if not np.isfinite(loss):
            return s + 1, n_correct
        n_correct += corr_t[0]
    return n_steps, n_correct

