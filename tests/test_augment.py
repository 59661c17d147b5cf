"""Random shifts, affine warps and dropout masks (fastmnist.augment): the counter-based
generator, its Numba twins, and training with them in both backends."""

import numpy as np
import pytest
from conftest import random_net, random_pixels
from tolerances import STEPS_ATOL_F64, tol

from fastmnist import augment
from fastmnist.backends import _shift
from fastmnist.backends import numba_cpu as fast
from fastmnist.backends import numpy_ref as ref
from fastmnist.errors import InputError
from fastmnist.optim import Optimizer, init_state

KEYS = [0, 1, 2**63 + 12345, 2**64 - 1]


def test_mix64_twins_agree():
    x = np.array([0, 1, 2, 2**32, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15], dtype=np.uint64)
    got = np.array([_shift.mix64(v) for v in x], dtype=np.uint64)
    np.testing.assert_array_equal(got, augment.mix64(x))
    assert len(set(got.tolist())) == len(x)  # a bijection: no collisions here


@pytest.mark.parametrize("k", [1, 2, 5])
def test_row_shifts_twins_agree_and_cover_the_range(k):
    rows = np.arange(20000, dtype=np.int64)
    for key in KEYS:
        dy, dx = augment.row_shifts(np.uint64(key), rows, k)
        for r in (0, 1, 777, 19999):
            assert _shift.row_shifts(np.uint64(key), r, k) == (dy[r], dx[r])
        # every shift in [-k, k]^2, about equally often (expected 20000 / (2k+1)^2 each)
        counts = np.zeros((2 * k + 1, 2 * k + 1))
        np.add.at(counts, (dy + k, dx + k), 1)
        expected = len(rows) / counts.size
        assert counts.min() > 0.75 * expected and counts.max() < 1.25 * expected


def test_step_keys_differ_by_step_and_seed():
    a = augment.Shift(1, 28, 0).keys(np.arange(1, 1001))
    b = augment.Shift(1, 28, 1).keys(np.arange(1, 1001))
    assert len(set(a.tolist())) == 1000 and not np.intersect1d(a, b).size


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_shift_nonzeros_twins_agree_and_match_the_dense_shift(dtype):
    side = 28
    x = random_pixels(30, side * side, seed=3, density=0.3).astype(dtype)
    x[0, -1] = 200  # the last pixel lit: moved out by any shift down or right
    for i, row in enumerate(x):
        dy, dx = [(0, 0), (2, -1), (-3, 3), (side - 1, 0)][i % 4]
        idx = np.flatnonzero(row).astype(np.uint16)
        val = row[idx]
        dense = augment.shift_rows(row[None], np.array([dy]), np.array([dx]), side)[0]
        outs = []
        for twin in (augment.shift_nonzeros, _shift.shift_nonzeros):
            cidx, cval = np.zeros(side * side, np.uint16), np.zeros(side * side, dtype)
            n = twin(idx, val, len(idx), dy, dx, side, cidx, cval)
            outs.append((cidx[:n].copy(), cval[:n].copy()))
            np.testing.assert_array_equal(cidx[:n], np.flatnonzero(dense))
            np.testing.assert_array_equal(cval[:n], dense[dense != 0])
        # in place, as kernels.row_input calls it on the gathered row
        cidx, cval = idx.copy(), val.copy()
        n = _shift.shift_nonzeros(cidx, cval, len(idx), dy, dx, side, cidx, cval)
        np.testing.assert_array_equal(cidx[:n], outs[0][0])
        np.testing.assert_array_equal(cval[:n], outs[0][1])


def test_shift_rows_moves_an_image():
    img = np.zeros((1, 5, 5), np.uint8)
    img[0, 1, 2] = 9
    out = augment.shift_rows(img.reshape(1, 25), np.array([2]), np.array([-1]), 5)
    assert out.reshape(5, 5)[3, 1] == 9 and out.sum() == 9


@pytest.mark.parametrize("k, d_in", [(-1, 784), (1.5, 784), (True, 784), (1, 785), (28, 784)])
def test_shift_for_refuses(k, d_in):
    with pytest.raises(InputError):
        augment.shift_for(k, d_in, 0)


def test_shift_for_none_for_zero():
    assert augment.shift_for(0, 784, 0) is None and augment.shift_for(None, 5, 0) is None
    assert augment.shift_for(0, 784, 0, (0, 0.0, 0)) is None


# ---- affine warps ----------------------------------------------------------------------------

AFFINE = (15.0, 0.1, 10.0)


@pytest.mark.parametrize("limits", [AFFINE, (45.0, 0.0, 0.0), (0.0, 0.45, 0.0), (0.0, 0.0, 30.0)])
def test_row_warps_twins_agree_and_stay_within_the_limits(limits):
    warp = augment.Affine(*limits).packed()
    rows = np.arange(20000, dtype=np.int64)
    degrees, scale, shear = limits
    for key in KEYS:
        a = augment.row_warps(np.uint64(key), rows, warp)
        for r in (0, 1, 777, 19999):
            assert _shift.row_warps(np.uint64(key), r, warp) == tuple(a[r])
        # the shear keeps the first row of the map: the angle and the scale are read off it
        angle = np.degrees(np.arctan2(-a[:, 1], a[:, 0]))
        zoom = 65536 / np.hypot(a[:, 0], a[:, 1])
        assert np.abs(angle).max() <= degrees + 0.01
        assert np.abs(zoom - 1).max() <= scale + 1e-3
        if degrees:  # the whole range is drawn, both ways
            assert angle.min() < -0.9 * degrees and angle.max() > 0.9 * degrees
        if scale:
            assert zoom.min() < 1 - 0.9 * scale and zoom.max() > 1 + 0.9 * scale
        # the second row is the first turned a quarter, minus h times the first
        det = (a[:, 0] * a[:, 3] - a[:, 1] * a[:, 2]) / 65536**2
        np.testing.assert_allclose(det, 1 / zoom**2, rtol=1e-3)
        h = -(a[:, 2] * a[:, 0] + a[:, 3] * a[:, 1]) / (a[:, 0] ** 2 + a[:, 1] ** 2)
        assert np.abs(h).max() <= np.tan(np.radians(shear)) + 1e-3
        if shear:
            assert h.min() < -0.9 * np.tan(np.radians(shear))


def test_warps_by_known_maps():
    """Exact maps: a quarter turn is np.rot90, half scale takes every other pixel about the
    centre, and the identity with a shift is the shift."""
    side = 28
    img = np.random.default_rng(0).integers(0, 256, (side, side)).astype(np.uint8)
    quarter = augment._inverse_map(np.array([65536]), np.array([65536]), np.array([0]))
    np.testing.assert_array_equal(quarter, [[0, -65536, 65536, 0]])
    out = augment.warp_rows(img.reshape(1, -1), [0], [0], quarter, side).reshape(side, side)
    np.testing.assert_array_equal(out, np.rot90(img, -1))
    half = augment._inverse_map(np.array([0]), np.array([32768]), np.array([0]))
    out = augment.warp_rows(img.reshape(1, -1), [0], [0], half, side).reshape(side, side)
    r = np.arange(7, 21)  # 2 r - 13 in [1, 27]
    np.testing.assert_array_equal(out[np.ix_(r, r)], img[np.ix_(2 * r - 13, 2 * r - 13)])
    assert not out[:6].any() and not out[22:].any()
    ident = augment._inverse_map(np.array([0]), np.array([65536]), np.array([0]))
    for dy, dx in [(0, 0), (2, -1), (-3, 3)]:
        np.testing.assert_array_equal(
            augment.warp_rows(img.reshape(1, -1), [dy], [dx], ident, side),
            augment.shift_rows(img.reshape(1, -1), np.array([dy]), np.array([dx]), side))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_warp_nonzeros_twins_agree_and_match_the_dense_warp(dtype):
    side = 28
    x = random_pixels(40, side * side, seed=4, density=0.3).astype(dtype)
    x[1] = 0  # an empty row
    x[2, :] = 0
    x[2, [0, 27, 756, 783]] = 7  # the corners only: the span's clamping
    rows = np.arange(len(x))
    key = np.uint64(2**63 + 5)
    a = augment.row_warps(key, rows, augment.Affine(*AFFINE).packed())
    a[3] = [0, -65536, 65536, 0]  # a quarter turn
    dy, dx = augment.row_shifts(key, rows, 2)
    dense = augment.warp_rows(x, dy, dx, a, side)
    scratch = np.zeros(side * side, dtype)
    for i, row in enumerate(x):
        idx = np.flatnonzero(row).astype(np.uint16)
        val = row[idx]
        want = np.flatnonzero(dense[i])
        for twin in (augment.warp_nonzeros, _shift.warp_nonzeros):
            cidx, cval = np.zeros(side * side, np.uint16), np.zeros(side * side, dtype)
            n = twin(idx, val, len(idx), dy[i], dx[i], tuple(a[i]), side, cidx, cval, scratch)
            np.testing.assert_array_equal(cidx[:n], want)
            np.testing.assert_array_equal(cval[:n], dense[i][want])
            assert not scratch.any()  # the kernel leaves its scratch as it found it
        # in place, as kernels.row_input calls it on the gathered row
        cidx = np.zeros(side * side, np.uint16)
        cval = np.zeros(side * side, dtype)
        cidx[:len(idx)], cval[:len(idx)] = idx, val
        n = _shift.warp_nonzeros(cidx, cval, len(idx), dy[i], dx[i], tuple(a[i]), side, cidx,
                                 cval, scratch)
        np.testing.assert_array_equal(cidx[:n], want)
        np.testing.assert_array_equal(cval[:n], dense[i][want])
        # the dense rows of the BLAS path
        for twin in (augment.warp_row, _shift.warp_row):
            dst = np.full(side * side, -1.0)
            twin(row, dy[i], dx[i], tuple(a[i]), side, 0.5, dst)
            np.testing.assert_array_equal(dst, dense[i] * 0.5)


@pytest.mark.parametrize("affine", [(-1, 0, 0), (46, 0, 0), (0, 0.5, 0), (0, 0, 31),
                                    (float("nan"), 0, 0), (1, 2), "big", 3])
def test_affine_for_refuses(affine):
    with pytest.raises(InputError):
        augment.affine_for(affine)


def test_affine_needs_square_images():
    with pytest.raises(InputError, match="affine"):
        augment.shift_for(0, 785, 0, AFFINE)


def _epoch(be, data, params, dtype, x, y, shift, opt_name="adam"):
    opt = Optimizer(opt_name)
    p = [(W.copy(), b.copy()) for W, b in params]
    state = init_state(p, opt)
    order = np.random.default_rng(1).permutation(len(x)).astype(np.int64)
    lrs = np.full(-(-len(x) // 32), 0.01)
    losses, correct = be.train_epoch(p, state, opt, data, y, order, 32, lrs, 3, shift=shift)
    return p, losses, correct


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", [10, 40])
@pytest.mark.parametrize("mode", ["csr", "dense_skip", "gemm", "float"])
@pytest.mark.parametrize("k, affine", [(2, None), (2, AFFINE), (0, AFFINE)])
def test_train_epoch_with_shifts_matches_the_reference(dtype, hidden, mode, k, affine):
    """Layer 1 at most LANES wide (row kernels) and wider (blocked backward); CSR, dense rows,
    BLAS; uint8 and float inputs: the same shifts and warps, and the same training, as the
    reference."""
    x = random_pixels(200, 784, seed=5)
    y = np.random.default_rng(5).integers(0, 10, len(x))
    if mode == "float":
        x = (x / 255.0).astype(dtype)
    params = random_net([784, hidden, 10], dtype, seed=hidden, scale=0.05)
    shift = augment.shift_for(k, 784, 11, affine)
    data = {"csr": fast.prepare(x, mode=fast.MODE_CSR) if mode != "float" else fast.prepare(x),
            "dense_skip": fast.prepare(x, mode=fast.MODE_DENSE_SKIP),
            "gemm": fast.prepare(x, mode=fast.MODE_GEMM),
            "float": fast.prepare(x, mode=fast.MODE_CSR)}[mode]
    p_f, l_f, c_f = _epoch(fast, data, params, dtype, x, y, shift)
    p_r, l_r, c_r = _epoch(ref, ref.prepare(x), params, dtype, x, y, shift)
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(l_f, l_r, rtol=rtol, atol=atol)
    assert c_f == c_r
    for layer_f, layer_r in zip(p_f, p_r):
        for a, b in zip(layer_f, layer_r):  # W, then b
            if dtype == np.float64:
                np.testing.assert_allclose(a, b, rtol=0, atol=STEPS_ATOL_F64)
            else:
                np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10)
    # and the shifts changed the training
    p_0, l_0, _ = _epoch(fast, data, params, dtype, x, y, None)
    assert not np.allclose(l_0, l_f)


@pytest.mark.parametrize("affine", [None, AFFINE])
def test_shifted_training_is_bit_identical_whatever_the_threads(affine):
    x = random_pixels(256, 784, seed=6)
    y = np.random.default_rng(6).integers(0, 10, len(x))
    params = random_net([784, 40, 10], np.float32, seed=1, scale=0.05)
    data = fast.prepare(x)
    shift = augment.shift_for(1, 784, 0, affine)
    outs = []
    for n in (1, 2):
        with fast.threads(n):
            outs.append(_epoch(fast, data, params, np.float32, x, y, shift))
    for (W1, b1), (W2, b2) in zip(outs[0][0], outs[1][0]):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)


# ---- dropout --------------------------------------------------------------------------------

def test_dropout_mask_twins_agree_and_keep_the_right_share():
    rows = np.arange(300, dtype=np.int64)
    for layer, p in ((0, 0.2), (1, 0.5), (2, 0.9)):
        thr = augment.dropout_threshold(p)
        lk = augment.layer_key(np.uint64(2**63 + 5), rows, layer)
        keep = augment.keeps(lk, np.arange(256), thr)  # (300, 256)
        for r in (0, 7, 299):
            assert _shift.layer_key(np.uint64(2**63 + 5), r, layer) == lk[r]
            got = [_shift.keeps(lk[r], j, thr) for j in range(256)]
            np.testing.assert_array_equal(got, keep[r])
        assert abs(keep.mean() - (1 - p)) < 0.01
    # the layers' masks differ
    a = augment.keeps(augment.layer_key(1, rows, 1), np.arange(64), 32768)
    b = augment.keeps(augment.layer_key(1, rows, 2), np.arange(64), 32768)
    assert 0.4 < (a == b).mean() < 0.6


def test_drop_nonzeros_twins_agree():
    idx = np.flatnonzero(random_pixels(1, 784, seed=9)[0]).astype(np.uint16)
    val = np.arange(1, len(idx) + 1).astype(np.uint8)
    lk, thr = np.uint64(12345), augment.dropout_threshold(0.4)
    outs = []
    for twin in (augment.drop_nonzeros, _shift.drop_nonzeros):
        cidx, cval = np.zeros(784, np.uint16), np.zeros(784, np.uint8)
        n = twin(idx, val, len(idx), lk, thr, cidx, cval)
        outs.append((cidx[:n].copy(), cval[:n].copy()))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert 0 < len(outs[0][0]) < len(idx)


def _drop_epoch(be, data, params, x, y, dropout, shift=None):
    opt = Optimizer("adam")
    p = [(W.copy(), b.copy()) for W, b in params]
    order = np.random.default_rng(1).permutation(len(x)).astype(np.int64)
    lrs = np.full(-(-len(x) // 32), 0.01)
    losses, correct = be.train_epoch(p, init_state(p, opt), opt, data, y, order, 32, lrs, 2,
                                     shift=shift, dropout=dropout)
    return p, losses, correct


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [[784, 10, 10], [784, 40, 10], [784, 24, 12, 10]])
@pytest.mark.parametrize("rates", [(0.3, 0.0), (0.0, 0.2), (0.5, 0.2)])
def test_train_epoch_with_dropout_matches_the_reference(dtype, sizes, rates):
    """Hidden and input dropout (with shifts when both): the row kernels (narrow, wide,
    deeper), dense rows and the BLAS path draw the reference's masks and train alike."""
    x = random_pixels(160, 784, seed=5)
    y = np.random.default_rng(5).integers(0, 10, len(x))
    params = random_net(sizes, dtype, seed=1, scale=0.05)
    drop = augment.dropout_for(rates[0], rates[1], 3)
    shift = augment.shift_for(1, 784, 3) if all(rates) else None
    p_r, l_r, c_r = _drop_epoch(ref, ref.prepare(x), params, x, y, drop, shift)
    rtol, atol = tol(dtype)
    for data in (fast.prepare(x), fast.prepare(x, mode=fast.MODE_DENSE_SKIP),
                 fast.prepare(x, mode=fast.MODE_GEMM)):
        p_f, l_f, c_f = _drop_epoch(fast, data, params, x, y, drop, shift)
        np.testing.assert_allclose(l_f, l_r, rtol=rtol, atol=atol)
        assert c_f == c_r
        for layer_f, layer_r in zip(p_f, p_r):
            for a, b in zip(layer_f, layer_r):
                if dtype == np.float64:
                    np.testing.assert_allclose(a, b, rtol=0, atol=STEPS_ATOL_F64)
                else:
                    np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10)
    _, l_0, _ = _drop_epoch(fast, fast.prepare(x), params, x, y, None)
    assert not np.allclose(l_0, l_r)  # the masks changed the training


def test_dropout_training_is_bit_identical_whatever_the_threads():
    x = random_pixels(256, 784, seed=6)
    y = np.random.default_rng(6).integers(0, 10, len(x))
    params = random_net([784, 40, 10], np.float32, seed=1, scale=0.05)
    drop = augment.dropout_for(0.5, 0.2, 0)
    outs = []
    for n in (1, 2):
        with fast.threads(n):
            outs.append(_drop_epoch(fast, fast.prepare(x), params, x, y, drop)[0])
    for (W1, b1), (W2, b2) in zip(*outs):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)


@pytest.mark.parametrize("args", [(1.0, 0.0), (0.0, -0.1), ("x", 0.0), (True, 0.0)])
def test_dropout_for_refuses_bad_rates(args):
    with pytest.raises(InputError):
        augment.dropout_for(*args, 0)


def test_dropout_for_refuses_hidden_dropout_without_relu():
    with pytest.raises(InputError, match="relu"):
        augment.dropout_for(0.5, 0.0, 0, activation="tanh")
    assert augment.dropout_for(0.0, 0.2, 0, activation="tanh").p_in == 0.2
    assert augment.dropout_for(0, 0, 0) is None
