"""On-the-fly augmentation of the training images: random shifts and affine warps (rotation,
scale, shear), drawn by a counter-based generator.

Every random choice is a pure function of (seed, optimizer step, row): the step's key is
``mix64(mix64(seed) ^ t)`` for the global step t (1, 2, ... over the whole run), a row's
draw ``mix64(key ^ row)`` with ``row`` its index in the dataset. The NumPy reference and the
Numba kernels (:mod:`fastmnist.backends._shift`, the same functions) therefore move every
row identically, whatever the thread count, and a resumed run draws what an uninterrupted
one would have. No copy of the dataset is ever made: the Numba backend moves each row's
nonzero pixels as it reads them; the reference shifts the batch it has gathered anyway.

A shift of (dy, dx), each uniform in [-k, k], moves the image dy rows down and dx columns
right; pixels moved out are lost and the uncovered border is 0 (the background).

An affine warp (:class:`Affine`) also rotates, scales and shears the image about its centre,
as torchvision's ``RandomAffine`` does with nearest-neighbour interpolation: every output
pixel takes the input pixel nearest to where the inverse map sends it. The map is computed
in integer fixed point (16 fractional bits; no sine or cosine), so both backends warp every
row identically on any CPU: the rotation comes from tan(angle / 2), uniform in
[-tan(degrees / 2), tan(degrees / 2)]; the scale is uniform in [1 - scale, 1 + scale]; the
shear factor is uniform in [-tan(shear), tan(shear)] (along the columns).
"""

import math
from typing import NamedTuple

import numpy as np

from .backends import check_number
from .errors import InputError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class Shift(NamedTuple):
    """Random shifts of up to ``k`` pixels of side x side images, seeded by ``seed``, and
    random affine warps within the limits ``warp`` (``Affine.packed``; 0: none)."""

    k: int
    side: int
    seed: int
    warp: int = 0

    def keys(self, t):
        """The keys (n,) uint64 of the global steps t (n,) (1 for the run's first step)."""
        return step_keys(self.seed, t)


def step_keys(seed, t):
    """The keys (n,) uint64 of the global steps t (n,) of a run seeded by `seed`: every random
    draw of a step (shifts, dropout masks) derives from its key."""
    return mix64(mix64(np.uint64(int(seed) & (2**64 - 1))) ^ np.asarray(t, np.uint64))


def shift_for(k, d_in, seed, affine=None):
    """A :class:`Shift` of up to k pixels and the random warps `affine` (an :class:`Affine`,
    a (degrees, scale, shear) tuple or None) for rows of d_in features, or None when k is 0
    and there is no warp.

    The rows must be square images (d_in = side * side); k must be below the side.
    """
    warp = affine_for(affine)
    if (k is None or k == 0) and warp is None:
        return None
    k = 0 if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"shift must be a whole number of pixels >= 0, got {k!r}")
    side = int(round(np.sqrt(d_in)))
    what = "shift" if warp is None else "affine"
    if side * side != d_in:
        raise InputError(f"{what} needs square images; rows of {d_in} features are not")
    if k >= side:
        raise InputError(f"shift {k} must be below the image side {side}")
    return Shift(int(k), side, 0 if seed is None else int(seed),
                 0 if warp is None else warp.packed())


def mix64(x):
    """SplitMix64's finalizer of x (uint64 or an array of them), elementwise."""
    with np.errstate(over="ignore"):  # arithmetic mod 2^64, as the kernels do it
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def row_shifts(key, rows, k):
    """(dy, dx) int64 arrays in [-k, k] of the rows `rows` (dataset indices) in the step of
    `key` (uint64)."""
    h = mix64(np.uint64(key) ^ np.asarray(rows, dtype=np.uint64))
    m = np.uint64(2 * k + 1)
    dy = (h % m).astype(np.int64) - k
    dx = ((h >> np.uint64(32)) % m).astype(np.int64) - k
    return dy, dx


def shift_nonzeros(x_idx, x_val, n_nz, dy, dx, side, cidx, cval):
    """NumPy twin of the kernel: the nonzero pixels (x_idx, x_val)[:n_nz] of a side x side
    image moved by (dy, dx), into cidx, cval; returns how many stay inside."""
    k = np.asarray(x_idx[:n_nz], dtype=np.int64)
    r, c = k // side + dy, k % side + dx
    inside = (r >= 0) & (r < side) & (c >= 0) & (c < side)
    n = int(inside.sum())
    cidx[:n] = (r * side + c)[inside]
    cval[:n] = np.asarray(x_val[:n_nz])[inside]
    return n


# ---- affine warps: the same draws as the kernels' ---------------------------------------------

#: the limits of :class:`Affine`: degrees, scale, shear (each packed into 16 bits)
MAX_DEGREES, MAX_SCALE, MAX_SHEAR = 45.0, 0.45, 30.0
_WARP_SALT = np.uint64(0x2545F4914F6CDD1D)
_ONE = 1 << 16  # fixed point: 16 fractional bits


class Affine(NamedTuple):
    """Random affine warps about the image centre: rotations of up to ``degrees`` either way,
    scales in [1 - scale, 1 + scale] and shears of up to ``shear`` degrees either way (see
    the module's docstring for the exact distributions)."""

    degrees: float = 0.0
    scale: float = 0.0
    shear: float = 0.0

    def packed(self):
        """The limits in fixed point, packed into one int: U | Z << 16 | H << 32 with
        U = tan(degrees / 2), Z = scale and H = tan(shear), each times 2^16, rounded."""
        u = round(math.tan(math.radians(self.degrees) / 2) * _ONE)
        z = round(self.scale * _ONE)
        h = round(math.tan(math.radians(self.shear)) * _ONE)
        return u | z << 16 | h << 32


def affine_for(affine):
    """An :class:`Affine` from `affine` (an Affine, a (degrees, scale, shear) tuple or None),
    checked against the limits; None when it warps nothing."""
    if affine is None:
        return None
    try:
        degrees, scale, shear = (float(v) for v in affine)
    except (TypeError, ValueError):
        raise InputError(f"affine must be (degrees, scale, shear), got {affine!r}") from None
    for name, v, top in (("degrees", degrees, MAX_DEGREES), ("scale", scale, MAX_SCALE),
                         ("shear", shear, MAX_SHEAR)):
        if not 0 <= v <= top:  # also refuses NaN
            raise InputError(f"affine {name} must be in [0, {top}], got {v!r}")
    a = Affine(degrees, scale, shear)
    return a if a.packed() else None


def row_warps(key, rows, warp):
    """The inverse maps (n, 4) int64 (a00, a01, a10, a11; 2^16 is 1) of the random warps of
    the rows `rows` (dataset indices) in the step of `key`, within the packed limits `warp`:
    an output pixel at (r, c) takes the input pixel nearest to centre + A (r, c) - centre)
    (before the row's shift)."""
    with np.errstate(over="ignore"):
        h = mix64(mix64(np.uint64(key) ^ np.asarray(rows, dtype=np.uint64)) ^ _WARP_SALT)
    lim = [(int(warp) >> s) & 0xFFFF for s in (0, 16, 32)]
    draw = [((h >> np.uint64(s)) & np.uint64(0x1FFFFF)) % np.uint64(2 * m + 1)
            for s, m in zip((0, 21, 42), lim)]
    u, z, sh = (d.astype(np.int64) - m for d, m in zip(draw, lim))
    return _inverse_map(u, z + _ONE, sh)


def _inverse_map(u, zq, hq):
    """The inverse map (n, 4) of rotations by 2 atan(u / 2^16), scales zq / 2^16 and shears
    hq / 2^16 (int64 arrays), in integer arithmetic (the kernels' ``_inverse_map``)."""
    den = (1 << 32) + u * u
    cq = ((1 << 32) - u * u) * _ONE // den  # cos, sin of the angle, from tan(angle / 2)
    sq = u * (1 << 33) // den
    iz = (1 << 32) // zq  # 1 / scale
    m00, m01 = (cq * iz) >> 16, (-sq * iz) >> 16
    m10, m11 = (sq * iz) >> 16, (cq * iz) >> 16
    return np.stack([m00, m01, m10 - ((hq * m00) >> 16), m11 - ((hq * m01) >> 16)], axis=-1)


def _sources(a, dy, dx, side):
    """For every output pixel (r, c) of side x side images: the input pixel (n, side * side)
    its warp a (n, 4) and shift (dy, dx) (n,) take it from, and whether it is inside."""
    r, c = np.divmod(np.arange(side * side, dtype=np.int64), side)
    vy = 2 * (r[None] - dy[:, None]) - (side - 1)  # half pixels from the centre
    vx = 2 * (c[None] - dx[:, None]) - (side - 1)
    sy = (a[:, 0:1] * vy + a[:, 1:2] * vx + (side << 16)) >> 17
    sx = (a[:, 2:3] * vy + a[:, 3:4] * vx + (side << 16)) >> 17
    inside = (sy >= 0) & (sy < side) & (sx >= 0) & (sx < side)
    return np.where(inside, sy * side + sx, 0), inside


def warp_nonzeros(x_idx, x_val, n_nz, dy, dx, a, side, cidx, cval, dense):
    """NumPy twin of the kernel: the nonzero pixels (x_idx, x_val)[:n_nz] of a side x side
    image warped by the inverse map a (4,) and shifted by (dy, dx), into cidx, cval (in
    order); returns how many. dense (side * side,) is the kernel's scratch (unused here)."""
    img = np.zeros(side * side, dtype=np.asarray(x_val).dtype)
    img[np.asarray(x_idx[:n_nz], dtype=np.int64)] = x_val[:n_nz]
    src, inside = _sources(np.asarray(a, np.int64)[None], np.array([dy]), np.array([dx]), side)
    out = np.where(inside[0], img[src[0]], 0)
    keep = np.flatnonzero(out)
    cidx[:len(keep)] = keep
    cval[:len(keep)] = out[keep]
    return len(keep)


def warp_row(src, dy, dx, a, side, scale, dst):
    """NumPy twin of the kernel: dst (side * side,) = the dense image src warped by the
    inverse map a (4,) and shifted by (dy, dx), times scale; 0 where the map leaves it."""
    dst[:] = warp_rows(np.asarray(src)[None], [dy], [dx], np.asarray(a)[None], side)[0] * scale


def warp_rows(x, dy, dx, a, side):
    """Rows x (n, side * side), each warped by its inverse map a[i] (n, 4) and shifted by
    (dy[i], dx[i]); 0 where the map leaves the image."""
    x = np.asarray(x)
    src, inside = _sources(np.asarray(a, np.int64), np.asarray(dy, np.int64),
                           np.asarray(dx, np.int64), side)
    out = np.take_along_axis(x, src, axis=1)
    out[~inside] = 0
    return out


def shift_rows(x, dy, dx, side):
    """Rows x (n, side * side) moved by (dy[i], dx[i]) each, zero where uncovered."""
    n = len(x)
    img = np.asarray(x).reshape(n, side, side)
    out = np.zeros_like(img)
    for a in np.unique(dy):
        for b in np.unique(dx):
            m = (dy == a) & (dx == b)
            if not m.any():
                continue
            src = img[m][:, max(0, -a):side - max(0, a), max(0, -b):side - max(0, b)]
            out[np.flatnonzero(m)[:, None, None],
                np.arange(max(0, a), side - max(0, -a))[None, :, None],
                np.arange(max(0, b), side - max(0, -b))[None, None, :]] = src
    return out.reshape(n, side * side)


# ---- dropout masks: the same draws as the kernels' -------------------------------------------

_LAYER_SALT = np.uint64(0xD1B54A32D192ED03)


def dropout_threshold(p):
    """The 16-bit threshold of dropout rate p in [0, 1): a unit is dropped when its 16 random
    bits are below it (so the rate is round(p * 65536) / 65536)."""
    return int(round(float(p) * 65536))


def layer_key(key, rows, layer):
    """The keys (m,) of the dropout masks of the rows `rows` (dataset indices), layer `layer`
    (0: the input pixels, l: the output of hidden layer l), in the step of `key`."""
    with np.errstate(over="ignore"):
        return mix64(mix64(np.uint64(key) ^ np.asarray(rows, dtype=np.uint64))
                     ^ (_LAYER_SALT + np.uint64(layer)))


def keeps(lkey, unit, threshold):
    """Whether dropout keeps each unit (d,) of each mask lkey (m,): bool (m, d). Each unit
    draws 16 bits, four units per hash, and is kept when they are >= threshold."""
    unit = np.asarray(unit, dtype=np.uint64)
    h = mix64(np.asarray(lkey, dtype=np.uint64)[..., None] ^ (unit >> np.uint64(2)))
    u = (h >> (np.uint64(16) * (unit & np.uint64(3)))) & np.uint64(0xFFFF)
    return u >= np.uint64(threshold)


def drop_nonzeros(x_idx, x_val, n_nz, lkey, threshold, cidx, cval):
    """NumPy twin of the kernel: the pixels (x_idx, x_val)[:n_nz] that the input mask `lkey`
    keeps, into cidx, cval; returns how many."""
    idx = np.asarray(x_idx[:n_nz])
    kept = keeps(np.array([lkey], dtype=np.uint64), idx, threshold)[0]
    n = int(kept.sum())
    cidx[:n] = idx[kept]
    cval[:n] = np.asarray(x_val[:n_nz])[kept]
    return n


class Dropout(NamedTuple):
    """Inverted dropout, seeded by ``seed``: rates of the input pixels and of every hidden
    layer's outputs. A kept unit is multiplied by 1 / (1 - rate)."""

    p_in: float
    p_hidden: float
    seed: int

    def keys(self, t):
        """The keys of the global steps t (as :meth:`Shift.keys`)."""
        return step_keys(self.seed, t)

    def thresholds(self):
        """(input, hidden) thresholds (``dropout_threshold``)."""
        return dropout_threshold(self.p_in), dropout_threshold(self.p_hidden)


def dropout_for(p_hidden, p_in, seed, activation="relu"):
    """A :class:`Dropout`, or None when both rates are 0. Rates in [0, 1); hidden dropout
    needs ReLU hidden layers (the kernels take the derivative from the dropped outputs)."""
    rates = [check_number(p, name, "a rate in [0, 1)", upper=1.0)
             for name, p in (("dropout", p_hidden), ("input_dropout", p_in))]
    if rates[0] and activation not in ("relu", 0):
        raise InputError("dropout of hidden layers needs activation='relu'")
    if not any(rates):
        return None
    return Dropout(rates[1], rates[0], 0 if seed is None else int(seed))
