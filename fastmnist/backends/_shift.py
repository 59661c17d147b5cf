"""Random shifts of the training images inside the compiled epoch: the Numba twins of
:mod:`fastmnist.augment` (same names, same arguments, same results).

A row's shift is a pure function of (step key, row index, k): see :mod:`fastmnist.augment`
for the generator and the contract. Here it moves a row's nonzero pixels, as the kernels
hold them (indices into the flattened side x side image, and values), never a copy of the
dataset.
"""

import numpy as np

from ._jit import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@jit
def mix64(x):
    """SplitMix64's finalizer of x (uint64): a bijection whose every output bit depends on
    every input bit."""
    z = np.uint64(x) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def row_shifts(key, rows, k):
    """(dy, dx) in [-k, k] of the row `rows` (an int) in the step of `key` (uint64)."""
    h = mix64(np.uint64(key) ^ np.uint64(rows))
    m = np.uint64(2 * k + 1)
    dy = np.int64(h % m) - k
    dx = np.int64((h >> np.uint64(32)) % m) - k
    return dy, dx


@jit
def shift_nonzeros(x_idx, x_val, n_nz, dy, dx, side, cidx, cval):
    """The nonzero pixels (x_idx, x_val)[:n_nz] of a side x side image moved by dy rows and
    dx columns, into cidx, cval; returns how many stay inside the image (in order). x_idx may
    be cidx itself: each write lands at or before the entry it reads."""
    n = 0
    # k // side as a multiply and a shift (a division per pixel cost a 784-1024-10 epoch with
    # shifts 35%): M = ceil(2^32 / side) gives floor(k * M / 2^32) = k // side exactly while
    # k * (M - 2^32 / side) < 2^32 / side, that is for every k < side^2 when side <= 1024
    magic = np.uint64(((1 << 32) + side - 1) // side)
    exact = side <= 1024
    for q in range(n_nz):  # branch-free: a pixel moved out is overwritten by the next one
        k = np.int64(x_idx[q])
        row = np.int64((np.uint64(k) * magic) >> np.uint64(32)) if exact else k // side
        r = row + dy
        c = k - row * side + dx
        v = x_val[q]
        cidx[n] = r * side + c if (0 <= r < side and 0 <= c < side) else 0
        cval[n] = v
        n += 1 if (0 <= r < side and 0 <= c < side) else 0
    return n


# ---- dropout masks ---------------------------------------------------------------------------

_LAYER_SALT = np.uint64(0xD1B54A32D192ED03)


@jit
def layer_key(key, rows, layer):
    """The key of the dropout mask of row `rows` (an int), layer `layer` (0: the input
    pixels, l: the output of hidden layer l), in the step of `key` (uint64)."""
    return mix64(mix64(np.uint64(key) ^ np.uint64(rows)) ^ (_LAYER_SALT + np.uint64(layer)))


@jit
def keeps(lkey, unit, threshold):
    """Whether dropout keeps `unit` of the mask `lkey` (``layer_key``): each unit draws 16
    bits (four units per hash) and is kept when they are >= threshold (round(p * 65536))."""
    h = mix64(lkey ^ np.uint64(unit >> 2))
    u = (h >> np.uint64(16 * (unit & 3))) & np.uint64(0xFFFF)
    return u >= np.uint64(threshold)


@jit
def drop_nonzeros(x_idx, x_val, n_nz, lkey, threshold, cidx, cval):
    """The pixels (x_idx, x_val)[:n_nz] that the input mask `lkey` keeps, into cidx, cval;
    returns how many (in order). x_idx may be cidx itself."""
    n = 0
    for q in range(n_nz):  # branch-free: a dropped pixel is overwritten by the next one
        k = x_idx[q]
        cidx[n] = k
        cval[n] = x_val[q]
        n += 1 if keeps(lkey, np.int64(k), threshold) else 0
    return n
