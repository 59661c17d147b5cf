"""Where a sparse step of the Numba backend goes: each phase of one part, timed alone.

    python benchmarks/step_phases.py [--hidden 128] [--batch 128] [--repeats 200]
        [--optimizer sgd]

A step of the split by hidden units (``fastmnist.backends.columns``; one hidden layer, uint8
MNIST, float32) is one parallel region in which each part (a thread's share of the hidden
units) runs the backward and the update of this step's rows and the forward of the next
step's, and buckets its share of the next rows' blocks by pixel. Here each phase of each part
runs alone on the calling thread, `--repeats` times on the same batch (the fastest of 5
rounds): the forward (layer 1 over each row's nonzero pixels, then layer 2), the bucketing,
the backward as a whole and its three pieces (the output gradients, layer 2's backward,
``bucket_backward``: layer 1's weight gradient from the buckets), and the update. The parts
run side by side in a real step, so a step on two threads takes about one part's sum. Each
phase gets its arrays as ``columns._step`` passes them, borrowed (``_jit.borrow``): without,
every slice a kernel takes pays Numba's atomic reference counts, which more than doubled
``bucket_backward``'s time here (a view per pixel's bucket).
"""

import argparse
import time

import numpy as np
from numba import njit

import fastmnist
from fastmnist.backends import columns as C
from fastmnist.backends import numba_cpu as nb
from fastmnist.backends._jit import borrow
from fastmnist.backends.kernels import (
    add_transposed,
    bucket_backward,
    outer_block,
    output_grad,
    scale_for,
    transpose_into,
    transposed_backward,
)
from fastmnist.backends.numba_cpu import BLOCK
from fastmnist.optim import Optimizer


@njit
def _forward(reps, fl, net, t, data, rows, draw, bufs, stage):
    z, s, r, ci, cv = bufs
    staged, T, buckets, k0, si, sv, sn = stage
    for _ in range(reps):
        C._forward_part(borrow(fl), net, t, data, borrow(rows), draw,
                        (borrow(z), borrow(s), borrow(r), borrow(ci), borrow(cv)),
                        (staged, T, buckets, k0, borrow(si), borrow(sv), borrow(sn)))


@njit
def _bucket(reps, t, T, d_in, data, rows, draw, buckets, cidx, cval):
    for _ in range(reps):
        C._bucket_part(t, T, d_in, data, borrow(rows), draw, buckets, 0, borrow(cidx),
                       borrow(cval))


@njit
def _backward(reps, fl, g, net, t, data, rows, task, inv_n, bufs):
    S, at, z, r, dz, buckets, k0 = bufs
    for _ in range(reps):
        C._backward_part(borrow(fl), borrow(g), net, t, data, borrow(rows), task, inv_n,
                         (borrow(S), at, borrow(z), borrow(r), borrow(dz), buckets, k0))


@njit
def _output_grads(reps, p0, y, rows, inv_n, dz2):
    for _ in range(reps):
        for i in range(rows.shape[0]):
            p = p0.copy()
            output_grad(p, y[rows[i]], p0, inv_n, 0, inv_n * 0, dz2)


@njit
def _layer2_backward(reps, fl, g, wo2, bo2, ht, c, z, dz2, da, m):
    wt, gt = np.zeros(c * ht, fl.dtype), np.zeros(c * ht, fl.dtype)
    dzt = np.zeros(c * BLOCK, fl.dtype)
    for _ in range(reps):  # as ``columns._backward_part`` runs it
        transpose_into(borrow(fl), wo2, ht, c, wt)
        gt[:] = 0
        gb = borrow(g[bo2:bo2 + c])
        for b0 in range(0, m, BLOCK):
            b1 = min(m, b0 + BLOCK)
            for i in range(b0, b1):
                transposed_backward(wt, ht, c, borrow(z[i * ht:(i + 1) * ht]), borrow(dz2),
                                    borrow(da), 0)
                for j in range(c):
                    gb[j] += dz2[j]
                    dzt[j * BLOCK + i - b0] = dz2[j]
            outer_block(gt, ht, c, borrow(z), b0 * ht, dzt, b1 - b0)
        add_transposed(gt, borrow(g), wo2, ht, c)


@njit
def _bucket_backward(reps, layer, d_in, scale, buckets, n_blocks, rows_in, dz, g):
    KC, KR, KV = buckets
    for _ in range(reps):
        for k in range(n_blocks):
            bucket_backward(layer, rows_in[k], d_in, scale,
                            (borrow(KC[k]), borrow(KR[k]), borrow(KV[k])), borrow(dz), borrow(g))


@njit
def _update(reps, fl, state, G, net, t, rule):
    for _ in range(reps):
        C._update_part(borrow(fl), state, borrow(G), net, t, rule)


def _best(fn, args, reps):
    fn(2, *args)  # compile, warm the caches
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        fn(reps, *args)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "nesterov", "adam"],
                    help="the update's optimizer (default sgd; fast98 and default use adam)")
    args = ap.parse_args(argv)
    X, y, _, _ = fastmnist.load_mnist(download=False)
    y = y.astype(np.int64)
    H, B, d_in, c = args.hidden, args.batch, X.shape[1], 10
    dtype = np.dtype(np.float32)
    model = fastmnist.MLP(hidden=(H,), seed=0)
    data = nb.prepare(X)
    sizes, woff, P = nb._layout(model.params)
    T = nb.n_parts(H)
    if not C.applies(sizes, T, 0.0, 0):
        raise SystemExit(f"784-{H}-10 on {T} parts does not take the split by units")
    cut = C.cuts(H, T)
    flat = nb._flatten(model.params, dtype, P)
    C.to_blocks(flat, d_in, H, cut)
    G, Z, S, R, DZ, CI, CV, buckets, (SI, SV, SN), _ = C.buffers(
        sizes, P, B, dtype, data.values.dtype, cut)
    scale = dtype.type(scale_for(data.values, dtype, data.scale))
    dat = nb._data(data, scale, y)
    _, task = nb._task(0, y, len(X), c, dtype, None)
    net = (sizes, woff, cut, 0)
    rows = np.random.default_rng(0).permutation(len(X))[:B].astype(np.int64)
    draw = (np.int64(0), np.int64(1), np.uint64(0), np.int64(0), np.int64(0))
    inv_n = dtype.type(1 / B)
    opt = Optimizer(args.optimizer)
    t_adam = 10  # Adam's bias corrections as at its 10th step
    rule = (dtype.type(0.01), dtype.type(1 - opt.beta1 ** t_adam),
            dtype.type(1 - opt.beta2 ** t_adam), nb._hyper(opt, dtype), dtype.type(0),
            dtype.type(0))
    s1, s2 = np.zeros(P, dtype), np.zeros(P, dtype)  # the optimizer's state
    state = (s1, s2, flat[:1], dtype.type(0), opt.code)
    n_blocks = -(-B // nb.BLOCK)
    rows_in = np.array([min(nb.BLOCK, B - k * nb.BLOCK) for k in range(n_blocks)])

    def part_bufs(t):
        return (Z[t], S[t, 0:], R[t], CI[t], CV[t]), (False, T, buckets, 0, SI[t], SV[t], SN[t])

    for t in range(T):  # every part's share of the logits and of the buckets, as a step has
        _forward(1, flat, net, t, dat, rows, draw, *part_bufs(t))
    for t in range(T):
        _bucket(1, t, T, d_in, dat, rows, draw, buckets, CI[t], CV[t])
    nnz = int(np.diff(data.indptr)[rows].sum())
    print(f"784-{H}-10, {opt.name}, batch {B}, float32 uint8 pixels: {T} parts of "
          f"{np.diff(cut).tolist()} units; {nnz} nonzero pixels in the batch "
          f"({nnz / B:.1f} a row), blocks of {nb.BLOCK} rows; {args.repeats} repeats")
    dz = (np.random.default_rng(1).standard_normal(nb.BLOCK * H) * 1e-3).astype(dtype)
    dz2 = np.zeros(c, dtype)
    rep = args.repeats
    for t in range(T):
        lo, hi = int(cut[t]), int(cut[t + 1])
        ht = hi - lo
        bo1 = woff[0] + d_in * H
        wo2, bo2 = bo1 + H, bo1 + H + H * c
        g = G[t].copy()
        phases = {
            "forward (layers 1 and 2)": _best(_forward, (flat, net, t, dat, rows, draw,
                                                          *part_bufs(t)), rep),
            "bucketing (its blocks)": _best(_bucket, (t, T, d_in, dat, rows, draw, buckets,
                                                      CI[t], CV[t]), rep),
            "backward": _best(_backward, (flat, g, net, t, dat, rows, task, inv_n,
                                          (S, 0, Z[t], R[t], DZ[t], buckets, 0)), rep),
            "  output gradients": _best(_output_grads, (np.full(c, 0.1, dtype), y, rows, inv_n,
                                                        dz2), rep),
            "  layer 2 backward": _best(_layer2_backward, (
                flat, g, np.int64(wo2 + lo * c), np.int64(bo2), np.int64(ht), np.int64(c),
                Z[t], dz2, np.zeros(ht, dtype), B), rep),
            "  bucket_backward (layer 1)": _best(_bucket_backward, (
                (np.int64(woff[0] + d_in * lo), np.int64(bo1 + lo), np.int64(ht)), d_in,
                scale, buckets, n_blocks, rows_in, dz[:nb.BLOCK * ht], g), rep),
            "update": _best(_update, (flat, state, G, net, t, rule), rep),
        }
        print(f"part {t} ({ht} units)")
        for name, us in phases.items():
            print(f"  {name:30s} {us:8.1f} us")
        total = sum(v for k, v in phases.items() if not k.startswith("  "))
        print(f"  {'sum':30s} {total:8.1f} us")
    w_bytes = nnz * (int(np.diff(cut).max()) * dtype.itemsize)
    print(f"layer 1's forward reads {w_bytes / 1e6:.2f} MB of W1 rows a part a step "
          f"(each nonzero pixel's row of the part's block; the block is "
          f"{d_in * int(np.diff(cut).max()) * dtype.itemsize / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
