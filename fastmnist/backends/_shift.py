"""Random shifts and affine warps of the training images inside the compiled epoch: the Numba
twins of :mod:`fastmnist.augment` (same names, same arguments, same results).

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


# ---- affine warps ----------------------------------------------------------------------------

_WARP_SALT = np.uint64(0x2545F4914F6CDD1D)
_ONE = 1 << 16  # fixed point: 16 fractional bits


@jit
def _inverse_map(u, zq, hq):
    """The inverse map (a00, a01, a10, a11) of a rotation by 2 atan(u / 2^16), a scale
    zq / 2^16 and a shear hq / 2^16, in integer arithmetic (exactly as NumPy's twin)."""
    den = (np.int64(1) << 32) + u * u
    cq = ((np.int64(1) << 32) - u * u) * _ONE // den
    sq = u * (np.int64(1) << 33) // den
    iz = (np.int64(1) << 32) // zq
    m00, m01 = (cq * iz) >> 16, (-sq * iz) >> 16
    m10, m11 = (sq * iz) >> 16, (cq * iz) >> 16
    return m00, m01, m10 - ((hq * m00) >> 16), m11 - ((hq * m01) >> 16)


@jit
def row_warps(key, rows, warp):
    """The inverse map (a00, a01, a10, a11) of the random warp of the row `rows` (an int) in
    the step of `key`, within the packed limits `warp` (``augment.Affine.packed``)."""
    h = mix64(mix64(np.uint64(key) ^ np.uint64(rows)) ^ _WARP_SALT)
    lu, lz, lh = warp & 0xFFFF, (warp >> 16) & 0xFFFF, (warp >> 32) & 0xFFFF
    u = np.int64((h & np.uint64(0x1FFFFF)) % np.uint64(2 * lu + 1)) - lu
    z = np.int64(((h >> np.uint64(21)) & np.uint64(0x1FFFFF)) % np.uint64(2 * lz + 1)) - lz
    sh = np.int64(((h >> np.uint64(42)) & np.uint64(0x1FFFFF)) % np.uint64(2 * lh + 1)) - lh
    return _inverse_map(u, z + _ONE, sh)


@jit
def _span(p, iq, lo, hi, c0, c1):
    """[c0, c1] narrowed to the c where the nearest pixel to (p + q c) / 2 can lie in
    [lo, hi], that is 2 lo <= p + q c < 2 hi + 2, given iq = 1 / q (inf for q = 0): a bound
    computed in floating point and grown by a pixel either way."""
    a, b = 2.0 * lo - p, 2.0 * hi + 2.0 - p
    if not np.isfinite(iq):  # q = 0: every column or none
        return (c0, c1) if a <= 0.0 < b else (c0, c0 - 1)
    u, v = a * iq, b * iq
    u, v = min(u, v), max(u, v)
    return max(c0, int(u) - 2), min(c1, int(v) + 2)  # int() truncates: a pixel more


@jit
def warp_nonzeros(x_idx, x_val, n_nz, dy, dx, a, side, cidx, cval, dense):
    """The nonzero pixels (x_idx, x_val)[:n_nz] of a side x side image warped by the inverse
    map a (``row_warps``) and shifted by (dy, dx), into cidx, cval (in order); returns how
    many. dense (side * side,): all zero, the image's scratch, left all zero. x_idx may be
    cidx itself: the pixels are in dense before the first write.

    Each output row visits only the columns whose source can fall in the input's bounding
    box (``_span``, a bound in floating point; the pixels themselves come from exact
    integer arithmetic): about 2 us a 28 x 28 MNIST row.
    """
    if n_nz == 0:
        return 0
    magic = np.uint64(((1 << 32) + side - 1) // side)  # k // side, as in shift_nonzeros
    exact = side <= 1024
    lo_y, hi_y, lo_x, hi_x = side, -1, side, -1
    for q in range(n_nz):
        k = np.int64(x_idx[q])
        y = np.int64((np.uint64(k) * magic) >> np.uint64(32)) if exact else k // side
        x = k - y * side
        dense[k] = x_val[q]
        lo_y, hi_y, lo_x, hi_x = min(lo_y, y), max(hi_y, y), min(lo_x, x), max(hi_x, x)
    a00, a01, a10, a11 = a
    half = np.int64(side) << 16
    f00, f01, f10, f11 = a00 / _ONE, a01 / _ONE, a10 / _ONE, a11 / _ONE
    iq_y = 1.0 / (2.0 * f01) if a01 != 0 else np.inf
    iq_x = 1.0 / (2.0 * f11) if a11 != 0 else np.inf
    n = 0
    for r in range(side):
        vy = 2 * (r - dy) - (side - 1)  # half pixels from the centre
        by, bx = a00 * vy + half, a10 * vy + half
        # source (half pixels) p + q c along this row, for the rows and the columns
        v0 = -2 * dx - (side - 1)
        c0, c1 = _span(f00 * vy + f01 * v0 + side, iq_y, lo_y, hi_y, 0, side - 1)
        c0, c1 = _span(f10 * vy + f11 * v0 + side, iq_x, lo_x, hi_x, c0, c1)
        for c in range(c0, c1 + 1):
            vx = 2 * (c - dx) - (side - 1)
            sy, sx = (by + a01 * vx) >> 17, (bx + a11 * vx) >> 17
            inside = 0 <= sy < side and 0 <= sx < side
            v = dense[sy * side + sx] if inside else dense[0] * 0
            cidx[n] = r * side + c  # branch-free: a zero is overwritten by the next pixel
            cval[n] = v
            n += 1 if v != 0 else 0
    for y in range(lo_y, hi_y + 1):  # leave the scratch all zero
        for x in range(lo_x, hi_x + 1):
            dense[y * side + x] = 0
    return n


@jit
def warp_row(src, dy, dx, a, side, scale, dst):
    """dst (side * side,) = the dense image src warped by the inverse map a and shifted by
    (dy, dx), times scale; 0 where the map leaves the image."""
    a00, a01, a10, a11 = a
    half = np.int64(side) << 16
    for r in range(side):
        vy = 2 * (r - dy) - (side - 1)
        by, bx = a00 * vy + half, a10 * vy + half
        for c in range(side):
            vx = 2 * (c - dx) - (side - 1)
            sy, sx = (by + a01 * vx) >> 17, (bx + a11 * vx) >> 17
            inside = 0 <= sy < side and 0 <= sx < side
            dst[r * side + c] = src[sy * side + sx] * scale if inside else src[0] * 0


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
