"""Steps split by hidden units (fastmnist.backends.columns) against the reference loop and
against the steps split by rows: every optimizer, input mode, head, activation and trick the
split takes, float64 tight and float32 reasonable, and bit-identical whatever the threads."""

import numba
import numpy as np
import pytest
from conftest import params_close, random_net, random_pixels, random_targets
from tolerances import tol

from fastmnist import augment
from fastmnist.backends import columns
from fastmnist.backends import numba_cpu as fast
from fastmnist.backends import numpy_ref as ref
from fastmnist.optim import Optimizer, init_state

DTYPES = [np.float64, np.float32]

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                reason="the split by units needs two or more parts (cores)")


@pytest.fixture
def narrow_parts(monkeypatch):
    """Parts of any width, so that small nets take the split by units."""
    monkeypatch.setattr(columns, "MIN_UNITS", 1)


def by_rows(monkeypatch):
    monkeypatch.setattr(columns, "MIN_UNITS", 1 << 30)


def copy(params):
    return [(W.copy(), b.copy()) for W, b in params]


def test_cuts_are_whole_vectors_and_cover_the_layer():
    assert columns.cuts(128, 2).tolist() == [0, 64, 128]
    assert columns.cuts(100, 2).tolist() == [0, 48, 100]
    assert columns.cuts(1024, 3).tolist() == [0, 336, 688, 1024]
    for h, T in ((40, 2), (1000, 4), (17, 2)):
        c = columns.cuts(h, T)
        assert c[0] == 0 and c[-1] == h and np.all(np.diff(c) >= 0)
        assert np.all(c[1:-1] % fast.LANES == 0)


def test_which_runs_are_split_by_units():
    assert columns.applies([784, 128, 10], 2, 0.0, 0)
    assert columns.applies([784, 1024, 10], 4, 0.0, 0)
    assert not columns.applies([784, 10, 10], 2, 0.0, 0)  # too narrow for two parts
    assert not columns.applies([784, 128, 64, 10], 2, 0.0, 0)  # two hidden layers
    assert not columns.applies([784, 128, 10], 1, 0.0, 0)  # one part
    assert not columns.applies([784, 128, 10], 2, 3.0, 0)  # max-norm
    assert not columns.applies([784, 128, 10], 2, 0.0, 1000)  # hidden dropout


def test_blocks_round_trip():
    d_in, h = 7, 40
    flat = np.arange(d_in * h + 13, dtype=np.float64)
    cut = columns.cuts(h, 2)
    blocked = flat.copy()
    columns.to_blocks(blocked, d_in, h, cut)
    W = flat[:d_in * h].reshape(d_in, h)
    np.testing.assert_array_equal(blocked[:d_in * cut[1]], W[:, :cut[1]].reshape(-1))
    np.testing.assert_array_equal(blocked[d_in * cut[1]:d_in * h], W[:, cut[1]:].reshape(-1))
    np.testing.assert_array_equal(blocked[d_in * h:], flat[d_in * h:])
    columns.from_blocks(blocked, d_in, h, cut)
    np.testing.assert_array_equal(blocked, flat)


def _epochs(be, params, opt, data, x, y, batch, lrs, **kw):
    """Two calls of train_epoch (the state and Adam's counter carry over); (params, losses,
    right answers)."""
    n = len(y)
    order = np.random.default_rng(1).permutation(n)
    state = init_state(params, opt)
    losses, right = [], 0
    for t0 in (0, len(lrs)):
        out = be.train_epoch(params, state, opt, data, y, order, batch, lrs, t0, **kw)
        losses.append(out[0])
        right += out[1]
    return params, np.concatenate(losses), right


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("mode", [fast.MODE_CSR, fast.MODE_DENSE, fast.MODE_DENSE_SKIP])
@pytest.mark.parametrize("sizes", [[60, 40, 5], [50, 36, 20]], ids=["uneven", "wide-head"])
def test_epochs_match_the_reference(narrow_parts, dtype, optimizer, mode, sizes):
    """Weight decay, a short last batch, parts of unequal widths, more outputs than LANES:
    the same training as the reference loop."""
    assert fast._by_units(np.array(sizes), 0.0, 0)
    n, batch = 53, 10
    params = random_net(sizes, dtype, scale=0.3)
    x = random_pixels(n, sizes[0])
    y = np.random.default_rng(0).integers(0, sizes[-1], n)
    opt = Optimizer(optimizer, weight_decay=1e-3)
    lrs = np.full(6, 3e-3) if optimizer == "adam" else np.linspace(0.05, 0.01, 6)
    p_f, l_f, c_f = _epochs(fast, copy(params), opt, fast.prepare(x, mode=mode), x, y, batch,
                            lrs)
    p_r, l_r, c_r = _epochs(ref, copy(params), opt, x, x, y, batch, lrs)
    assert c_f == c_r
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(l_f, l_r, rtol=rtol, atol=atol)
    params_close(p_f, p_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("mode", [fast.MODE_CSR, fast.MODE_DENSE_SKIP])
def test_mnist_shape_takes_the_split_and_matches_the_rows_split(monkeypatch, dtype, optimizer,
                                                               mode):
    """784-128-10, the default threshold: split by units, and the same training as split by
    rows (float64 to rounding); batches of two blocks, each part bucketing one (from the
    rows its forward staged, for dense rows)."""
    sizes = [784, 128, 10]
    assert fast._by_units(np.array(sizes), 0.0, 0)
    n, batch = 300, 128
    params = random_net(sizes, dtype, scale=0.05)
    x = random_pixels(n, 784, seed=3)
    y = np.random.default_rng(3).integers(0, 10, n)
    opt = Optimizer(optimizer)
    lrs = np.full(3, 1e-3 if optimizer == "adam" else 0.05)
    data = fast.prepare(x, mode=mode)
    p_u, l_u, c_u = _epochs(fast, copy(params), opt, data, x, y, batch, lrs)
    by_rows(monkeypatch)
    assert not fast._by_units(np.array(sizes), 0.0, 0)
    p_r, l_r, c_r = _epochs(fast, copy(params), opt, data, x, y, batch, lrs)
    assert c_u == c_r
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(l_u, l_r, rtol=rtol, atol=atol)
    params_close(p_u, p_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["softmax", "logistic", "identity"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_heads_weights_l2_and_activations_match_the_reference(narrow_parts, dtype, head,
                                                              activation):
    """Row weights, scikit-learn's L2 (alpha / batch), every head and activation."""
    sizes = [40, 48, 3]
    assert fast._by_units(np.array(sizes), 0.0, 0)
    n, batch = 37, 10
    x = random_pixels(n, sizes[0], seed=2)
    y = random_targets(head, n, sizes[-1], seed=3)
    sw = np.random.default_rng(4).random(n) + 0.1
    params = random_net(sizes, dtype, seed=1, scale=0.1)
    opt = Optimizer("adam" if dtype == np.float64 else "nesterov")
    lrs = np.full(4, 1e-2)
    kw = dict(activation=activation, output=head, sample_weight=sw, l2=1e-2)
    p_f, l_f, c_f = _epochs(fast, copy(params), opt, fast.prepare(x, scale=0.01), x, y, batch,
                            lrs, **kw)
    p_r, l_r, c_r = _epochs(ref, copy(params), opt, ref.prepare(x, scale=0.01), x, y, batch,
                            lrs, **kw)
    assert c_f == c_r
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(l_f, l_r, rtol=rtol, atol=atol)
    params_close(p_f, p_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [None, (15.0, 0.1, 10.0)])
def test_shifts_input_dropout_smoothing_and_average_match_the_reference(narrow_parts, dtype,
                                                                       affine):
    """The tricks the split takes: random shifts (and affine warps), input dropout, label
    smoothing and the weights' moving average, drawn alike in both backends. Batches of two
    blocks: each part buckets the one its forward staged."""
    sizes = [784, 40, 10]
    n, batch = 400, 100
    x = random_pixels(n, 784, seed=5)
    y = np.random.default_rng(5).integers(0, 10, n)
    params = random_net(sizes, dtype, seed=5, scale=0.1)
    opt = Optimizer("momentum")
    lrs = np.full(4, 0.05)
    dropout = augment.dropout_for(0.0, 0.2, 7)
    assert fast._by_units(np.array(sizes), 0.0, dropout.thresholds()[1])
    runs = []
    for be, data in ((fast, fast.prepare(x)), (ref, x)):
        avg = copy(params)
        p, losses, right = _epochs(be, copy(params), opt, data, x, y, batch, lrs,
                                   shift=augment.shift_for(2, 784, 3, affine), dropout=dropout,
                                   label_smoothing=0.1, ema=avg, ema_decay=0.9)
        runs.append((p, avg, losses, right))
    (p_f, a_f, l_f, c_f), (p_r, a_r, l_r, c_r) = runs
    assert c_f == c_r
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(l_f, l_r, rtol=rtol, atol=atol)
    params_close(p_f, p_r, dtype)
    params_close(a_f, a_r, dtype)
    assert not np.allclose(a_f[0][0], p_f[0][0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bit_identical_whatever_the_threads(dtype):
    """The parts are fixed per machine: one thread running both gives the same bits."""
    sizes = [784, 128, 10]
    x = random_pixels(200, 784, seed=9)
    y = np.random.default_rng(9).integers(0, 10, 200)
    params = random_net(sizes, dtype, seed=9, scale=0.05)
    opt = Optimizer("adam")
    runs = []
    for n in (1, 2):
        with fast.threads(n):
            runs.append(_epochs(fast, copy(params), opt, fast.prepare(x), x, y, 64,
                                np.full(4, 1e-3)))
    for pair_a, pair_b in zip(runs[0][0], runs[1][0]):
        for u, v in zip(pair_a, pair_b):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_blocks_claimed_as_threads_come_free_are_bucketed_as_the_parts_do():
    """``_bucket_claimed`` (each block claimed from a counter by whichever thread is free)
    gives every block the buckets that the parts' fixed shares give it, claiming each once;
    a counter past the blocks buckets nothing."""
    sizes = np.array([784, 128, 10])
    x = random_pixels(150, 784, seed=3)  # three blocks, the last partial
    data = fast.prepare(x)
    dat = fast._data(data, np.float32(1 / 255), np.zeros(150, np.int64))
    rows = np.random.default_rng(3).permutation(150).astype(np.int64)
    draw = (np.int64(0), np.int64(1), np.uint64(0), np.int64(0), np.int64(0))
    cut = columns.cuts(128, 2)
    P = 784 * 128 + 128 + 128 * 10 + 10
    made = []
    for claimed in (False, True):
        bufs = columns.buffers(sizes, P, 150, np.float32, data.values.dtype, cut)
        buckets, claim, ci, cv = bufs[7], bufs[-1], bufs[5][0], bufs[6][0]
        if claimed:
            columns._bucket_claimed(784, dat, rows, draw, buckets, 0, ci, cv, claim)
            assert claim[0] == 3 + 1  # three blocks claimed, then one look past them
        else:
            for t in range(2):
                columns._bucket_part(t, 2, 784, dat, rows, draw, buckets, 0, ci, cv)
        made.append([b[:3].copy() for b in buckets])
    for a, b in zip(*made):
        np.testing.assert_array_equal(a, b)
    assert all(b.any() for b in made[1])  # the buckets hold the rows' pixels
    untouched = columns.buffers(sizes, P, 150, np.float32, data.values.dtype, cut)
    buckets, claim = untouched[7], untouched[-1]
    claim[0] = 3
    columns._bucket_claimed(784, dat, rows, draw, buckets, 0, untouched[5][0],
                            untouched[6][0], claim)
    assert not any(b.any() for b in buckets)


def test_claims_are_atomic_across_threads():
    """``_sync.fetch_add`` from every thread at once loses no add."""
    from fastmnist.backends._jit import pjit, prange
    from fastmnist.backends._sync import fetch_add

    @pjit
    def count(a, n, k):
        for _t in prange(k):
            for _ in range(n):
                fetch_add(a, 0, 1)

    a = np.zeros(8, np.int64)
    k = numba.config.NUMBA_NUM_THREADS
    count(a, 200_000, k)
    assert a[0] == 200_000 * k


def test_stops_before_a_nonfinite_update(narrow_parts):
    params = random_net([20, 40, 3], np.float64)
    params[0][0][0, 0] = np.inf
    before = copy(params)
    x = np.full((10, 20), 255, dtype=np.uint8)
    y = np.zeros(10, dtype=np.int64)
    losses, _ = fast.train_epoch(params, [], Optimizer("sgd"), fast.prepare(x), y,
                                 np.arange(10), 5, np.full(2, 0.1), 0)
    assert len(losses) == 1 and not np.isfinite(losses[0])
    for (W, b), (W0, b0) in zip(params, before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", [0, 1, 2, 3])
@pytest.mark.parametrize("h,c,m", [(64, 10, 64), (37, 3, 5), (200, 16, 1), (16, 17, 33)])
def test_layer2_backward_along_the_units_matches_numpy(dtype, act, h, c, m):
    """The split's layer 2 backward (``kernels.transposed_backward``, ``outer_block``): the
    input gradient of each row and the block's weight gradient, against NumPy's products;
    every activation's derivative, widths that are not whole vectors."""
    from fastmnist.backends import kernels as K
    rng = np.random.default_rng(h + c + m + act)
    wo = 7  # W (h, c) somewhere inside a flat vector
    flat = rng.standard_normal(wo + h * c + 5).astype(dtype)
    W = flat[wo:wo + h * c].reshape(h, c)
    A = rng.uniform(-1, 1, (m, h)).astype(dtype)
    if act == 0:
        A[A < 0] = 0  # ReLU outputs: zeros where the unit is off
    DZ = rng.standard_normal((m, c)).astype(dtype)
    deriv = {0: (A > 0).astype(dtype), 1: 1 - A * A, 2: A * (1 - A), 3: np.ones_like(A)}[act]

    wt = np.full(c * h, np.nan, dtype)
    K.transpose_into(flat, wo, h, c, wt)
    np.testing.assert_array_equal(wt.reshape(c, h), W.T)
    rtol, atol = tol(dtype)
    da = np.full(h, np.nan, dtype)  # overwritten, not added to
    for i in range(m):
        K.transposed_backward(wt, h, c, A[i], DZ[i], da, act)
        np.testing.assert_allclose(da, (W @ DZ[i]) * deriv[i], rtol=rtol, atol=atol)

    gt = rng.standard_normal(c * h).astype(dtype)  # added to
    want = gt.reshape(c, h) + DZ.T @ A
    dzt = np.zeros((c, m + 3), dtype)  # a row stride longer than the block
    dzt[:, :m] = DZ.T
    K.outer_block(gt, h, c, A.reshape(-1), 0, dzt.reshape(-1), m)
    np.testing.assert_allclose(gt.reshape(c, h), want, rtol=rtol, atol=10 * atol)

    g = rng.standard_normal(flat.shape[0]).astype(dtype)
    want = g.copy()
    want[wo:wo + h * c] += gt.reshape(c, h).T.reshape(-1)
    K.add_transposed(gt, g, wo, h, c)
    np.testing.assert_array_equal(g, want)
