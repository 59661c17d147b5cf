"""On-the-fly augmentation of the training images: random shifts, drawn by a counter-based
generator.

Every random choice is a pure function of (seed, optimizer step, row): the step's key is
``mix64(mix64(seed) ^ t)`` for the global step t (1, 2, ... over the whole run), a row's
draw ``mix64(key ^ row)`` with ``row`` its index in the dataset. The NumPy reference and the
Numba kernels (:mod:`fastmnist.backends._shift`, the same functions) therefore move every
row identically, whatever the thread count, and a resumed run draws what an uninterrupted
one would have. No copy of the dataset is ever made: the Numba backend moves each row's
nonzero pixels as it reads them; the reference shifts the batch it has gathered anyway.

A shift of (dy, dx), each uniform in [-k, k], moves the image dy rows down and dx columns
right; pixels moved out are lost and the uncovered border is 0 (the background).
"""

from typing import NamedTuple

import numpy as np

from .backends import check_number
from .errors import InputError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class Shift(NamedTuple):
    """Random shifts of up to ``k`` pixels of side x side images, seeded by ``seed``."""

    k: int
    side: int
    seed: int

    def keys(self, t):
        """The keys (n,) uint64 of the global steps t (n,) (1 for the run's first step)."""
        return step_keys(self.seed, t)


def step_keys(seed, t):
    """The keys (n,) uint64 of the global steps t (n,) of a run seeded by `seed`: every random
    draw of a step (shifts, dropout masks) derives from its key."""
    return mix64(mix64(np.uint64(int(seed) & (2**64 - 1))) ^ np.asarray(t, np.uint64))


def shift_for(k, d_in, seed):
    """A :class:`Shift` of up to k pixels for rows of d_in features, or None when k is 0.

    The rows must be square images (d_in = side * side); k must be below the side.
    """
    if k is None or k == 0:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"shift must be a whole number of pixels >= 0, got {k!r}")
    side = int(round(np.sqrt(d_in)))
    if side * side != d_in:
        raise InputError(f"shift needs square images; rows of {d_in} features are not")
    if k >= side:
        raise InputError(f"shift {k} must be below the image side {side}")
    return Shift(int(k), side, 0 if seed is None else int(seed))


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
