"""The Numba backend against its NumPy twin: every protocol function, same inputs."""

import sys

import background
import numpy as np
import pytest
from conftest import params_close, random_net, random_pixels, random_targets
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import STEPS_ATOL_F64, sums_close, tol

from fastmnist.backends import kernels
from fastmnist.backends import numba_cpu as fast
from fastmnist.backends import numpy_ref as ref
from fastmnist.errors import InputError
from fastmnist.optim import Optimizer, grad_flush_threshold, init_state

DTYPES = [np.float64, np.float32]
# (rows, layer widths): batch 1, odd sizes, several depths; layer 1 at most LANES wide (one
# vector) and wider (rows in blocks of BLOCK; 300 rows make several blocks per thread)
SHAPES = [(1, [784, 10, 10]), (7, [13, 5, 3]), (33, [29, 17, 11, 4]), (128, [784, 128, 10]),
          (5, [9, 2]), (300, [40, 24, 6]), (20, [30, 16, 16])]


def close(a, b, dtype):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def inputs(n, d, dtype, kind, seed=0):
    x = random_pixels(n, d, seed)
    if kind == "float":
        return (x / 255.0).astype(dtype)
    if kind == "zeros":
        x[: max(1, n // 2)] = 0  # all-zero rows
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_softmax(dtype):
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (3, 10), (300, 257)]:
        z = (rng.standard_normal(shape) * 5).astype(dtype)
        close(fast.relu(z), ref.relu(z), dtype)
        close(fast.softmax(z), ref.softmax(z), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_huge_logits(dtype):
    z = np.array([[1e4, 0, -1e4], [-1e30, -1e30 + 1e24, 5], [3e38, 3e38, 0]], dtype=dtype)
    p = fast.softmax(z)
    assert np.isfinite(p).all()
    close(p, ref.softmax(z), dtype)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)


def test_relu_keeps_nan():
    z = np.array([[np.nan, -1, 2]])
    assert np.isnan(fast.relu(z)[0, 0]) and np.isnan(ref.relu(z)[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["uint8", "float", "zeros"])
def test_linear(dtype, kind):
    """x @ W + b, within the rounding of a sum of those terms in another order."""
    for n, sizes in SHAPES:
        (W, b), *_ = random_net(sizes, dtype)
        x = inputs(n, sizes[0], dtype, kind)
        xs = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
        magnitude = np.abs(xs) @ np.abs(W.astype(np.float64)) + np.abs(b)
        sums_close(fast.linear(x, W, b), ref.linear(x, W, b), magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["uint8", "float", "zeros"])
def test_forward_and_loss_and_grads(dtype, kind):
    for n, sizes in SHAPES:
        params = random_net(sizes, dtype, seed=n)
        x = inputs(n, sizes[0], dtype, kind, seed=n)
        y = np.random.default_rng(n).integers(0, sizes[-1], n)
        close(fast.forward(params, x), ref.forward(params, x), dtype)
        loss_f, grads_f = fast.loss_and_grads(params, x, y)
        loss_r, grads_r = ref.loss_and_grads(params, x, y)
        close(loss_f, loss_r, dtype)
        for (dW_f, db_f), (dW_r, db_r) in zip(grads_f, grads_r):
            assert dW_f.dtype == dtype and db_f.dtype == dtype
            close(dW_f, dW_r, dtype)
            close(db_f, db_r, dtype)


@pytest.mark.parametrize("d", [784, 29])
@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_forward_of_a_batch_equals_its_rows_one_by_one(kind, d):
    """Batches of at least ``_SERIAL_ROWS`` rows run another kernel (rows on threads, weights
    copied to the aligned layout) than one image does: the same bits either way."""
    n = 2 * fast._SERIAL_ROWS + 3
    params = random_net([d, 40, 10], np.float32, seed=d)
    x = inputs(n, d, np.float32, kind, seed=d)
    batch = fast.forward(params, x)
    one_by_one = np.concatenate([fast.forward(params, x[i:i + 1]) for i in range(n)])
    np.testing.assert_array_equal(batch, one_by_one)


def _gathers(dtype):
    """gather_nonzeros and each loop it may take here: the scalar one always; vpcompressb's
    and pshufb's (``_lanes``) for uint8 rows where the CPU runs them."""
    gathers = {"gather_nonzeros": kernels.gather_nonzeros, "scalar": kernels.gather_scalar}
    if dtype == np.uint8 and kernels.PACKED:
        from fastmnist.backends import _lanes
        gathers["pshufb"] = _njit(lambda r, i, v: _lanes.shuffle_nonzeros(r, i, v))
        if kernels.COMPRESS:
            gathers["vpcompressb"] = _njit(lambda r, i, v: _lanes.compress_nonzeros(r, i, v))
    return gathers


def _njit(fn):
    import numba
    return numba.njit(fn)


@pytest.mark.parametrize("d", [784, 16, 29, 7, 8, 9, 64, 65, 130])
@pytest.mark.parametrize("idx_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_gather_nonzeros(dtype, idx_dtype, d):
    """Each row's nonzeros, in order, by every loop gather_nonzeros may take (64 pixels at a
    time, 8 at a time by a table, a word at a time, pixel by pixel): all-zero, all-nonzero,
    alternating and sparse rows, a nonzero last pixel; buffers exactly d long, nothing written
    past them."""
    x = random_pixels(40, d, seed=d, density=0.3).astype(dtype)
    x[0] = 0
    x[1] = 7
    x[2, :-1], x[2, -1] = 0, 9
    x[3, :], x[3, ::2] = 5, 0
    for name, gather in _gathers(dtype).items():
        for row in x:
            cidx, cval = np.full(d + 9, 99, idx_dtype), np.full(d + 9, 99, dtype)
            n_nz = gather(row, cidx[:d], cval[:d])
            np.testing.assert_array_equal(cidx[:n_nz], np.flatnonzero(row), err_msg=name)
            np.testing.assert_array_equal(cval[:n_nz], row[row != 0], err_msg=name)
            assert (cidx[d:] == 99).all() and (cval[d:] == 99).all(), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[784, 10, 10], [784, 40, 10], [29, 17, 20]])
def test_label_smoothing_matches_the_reference(dtype, sizes):
    """loss_and_grads and a training epoch with label smoothing: the row kernels (narrow and
    wide layer 1; 20 outputs, wider than LANES) and the BLAS path, against the reference."""
    params = random_net(sizes, dtype, seed=4, scale=0.1)
    x = inputs(96, sizes[0], dtype, "uint8", seed=4)
    y = np.random.default_rng(4).integers(0, sizes[-1], len(x))
    loss_f, grads_f = fast.loss_and_grads(params, x, y, label_smoothing=0.1)
    loss_r, grads_r = ref.loss_and_grads(params, x, y, label_smoothing=0.1)
    close(loss_f, loss_r, dtype)
    for (dW_f, db_f), (dW_r, db_r) in zip(grads_f, grads_r):
        close(dW_f, dW_r, dtype)
        close(db_f, db_r, dtype)
    opt = Optimizer("adam")
    order = np.random.default_rng(5).permutation(len(x)).astype(np.int64)
    lrs = np.full(3, 1e-3)
    p_r = [(W.copy(), b.copy()) for W, b in params]
    l_r, c_r = ref.train_epoch(p_r, init_state(p_r, opt), opt, ref.prepare(x), y, order, 32,
                               lrs, 0, label_smoothing=0.1)
    for mode in (fast.MODE_CSR, fast.MODE_GEMM):
        p_f = [(W.copy(), b.copy()) for W, b in params]
        l_f, c_f = fast.train_epoch(p_f, init_state(p_f, opt), opt, fast.prepare(x, mode=mode),
                                    y, order, 32, lrs, 0, label_smoothing=0.1)
        close(l_f, l_r, dtype)
        assert c_f == c_r
        params_close(p_f, p_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm(dtype):
    """Columns longer than c scaled to c, the others untouched; a training epoch with the
    constraint (row kernels, BLAS path) against the reference."""
    params = random_net([784, 40, 10], dtype, seed=7, scale=0.1)
    c = float(np.median(np.sqrt((params[0][0].astype(np.float64) ** 2).sum(axis=0))))
    p_f = [(W.copy(), b.copy()) for W, b in params]
    p_r = [(W.copy(), b.copy()) for W, b in params]
    fast.max_norm(p_f, c)
    ref.max_norm(p_r, c)
    params_close(p_f, p_r, dtype)
    norms = np.sqrt((params[0][0].astype(np.float64) ** 2).sum(axis=0))
    after = np.sqrt((p_f[0][0].astype(np.float64) ** 2).sum(axis=0))
    np.testing.assert_allclose(after[norms > c], c, rtol=1e-5)
    np.testing.assert_array_equal(p_f[0][0][:, norms <= c], params[0][0][:, norms <= c])
    x = inputs(96, 784, dtype, "uint8", seed=7)
    y = np.random.default_rng(7).integers(0, 10, len(x))
    opt = Optimizer("adam")
    order = np.arange(len(x), dtype=np.int64)
    lrs = np.full(3, 1e-2)
    p_r = [(W.copy(), b.copy()) for W, b in params]
    l_r, _ = ref.train_epoch(p_r, init_state(p_r, opt), opt, ref.prepare(x), y, order, 32,
                             lrs, 0, max_norm=c)
    for mode in (fast.MODE_CSR, fast.MODE_GEMM):
        p_f = [(W.copy(), b.copy()) for W, b in params]
        l_f, _ = fast.train_epoch(p_f, init_state(p_f, opt), opt, fast.prepare(x, mode=mode),
                                  y, order, 32, lrs, 0, max_norm=c)
        close(l_f, l_r, dtype)
        params_close(p_f, p_r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_average_matches_the_reference(dtype):
    """train_epoch(ema=, ema_decay=): the row kernels and the BLAS path update the average
    after every step as the reference does."""
    params = random_net([784, 40, 10], dtype, seed=8, scale=0.1)
    x = inputs(96, 784, dtype, "uint8", seed=8)
    y = np.random.default_rng(8).integers(0, 10, len(x))
    opt = Optimizer("momentum")
    order = np.arange(len(x), dtype=np.int64)
    lrs = np.full(3, 0.05)
    runs = []
    for be, data in ((ref, ref.prepare(x)), (fast, fast.prepare(x, mode=fast.MODE_CSR)),
                     (fast, fast.prepare(x, mode=fast.MODE_GEMM))):
        p = [(W.copy(), b.copy()) for W, b in params]
        avg = [(W.copy(), b.copy()) for W, b in params]
        be.train_epoch(p, init_state(p, opt), opt, data, y, order, 32, lrs, 0, ema=avg,
                       ema_decay=0.5)
        runs.append(avg)
        assert not np.allclose(avg[0][0], p[0][0]) and not np.allclose(avg[0][0], params[0][0])
    for avg in runs[1:]:
        params_close(avg, runs[0], dtype)


@pytest.mark.parametrize("be", [fast, ref])
def test_label_smoothing_refused_outside_its_range_and_heads(be):
    params = random_net([6, 3], np.float64)
    x, y = random_pixels(4, 6), np.array([0, 1, 2, 0])
    for bad in (-0.1, 1.0, "x", True):
        with pytest.raises(InputError, match="label_smoothing"):
            be.loss_and_grads(params, x, y, label_smoothing=bad)
    with pytest.raises(InputError, match="softmax"):
        be.loss_and_grads(params, x, np.zeros((4, 3)), output="logistic", label_smoothing=0.1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_with_huge_logits_is_exact(dtype):
    """A confident wrong answer: the loss is the logit gap, not log(0) = inf."""
    params = random_net([6, 3], dtype)
    params[0][0][:] = 0
    params[0][1][:] = np.array([0, 500, 0], dtype=dtype)
    x = np.ones((2, 6), dtype=np.uint8)
    y = np.array([0, 2])
    loss_f, _ = fast.loss_and_grads(params, x, y)
    loss_r, _ = ref.loss_and_grads(params, x, y)
    assert np.isfinite(loss_f)
    close(loss_f, loss_r, dtype)
    close(loss_f, 500.0, dtype)


def test_twenty_train_steps_float64():
    params_f = random_net([784, 32, 10], np.float64, scale=0.05)
    params_r = [(W.copy(), b.copy()) for W, b in params_f]
    rng = np.random.default_rng(3)
    for step in range(20):
        x = random_pixels(64, 784, seed=step)
        y = rng.integers(0, 10, 64)
        loss_f = fast.train_step(params_f, x, y, 0.1)
        loss_r = ref.train_step(params_r, x, y, 0.1)
        np.testing.assert_allclose(loss_f, loss_r, rtol=1e-10)
    for (Wf, bf), (Wr, br) in zip(params_f, params_r):
        np.testing.assert_allclose(Wf, Wr, rtol=0, atol=STEPS_ATOL_F64)
        np.testing.assert_allclose(bf, br, rtol=0, atol=STEPS_ATOL_F64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_adam_is_the_formula_bit_for_bit(dtype):
    """The reference's in-place Adam (scratch arrays, no temporaries) computes exactly the
    textbook expressions, gradient flush included: what the Numba backend is held to."""
    opt = Optimizer("adam")
    rng = np.random.default_rng(5)
    params = random_net([40, 16, 3], dtype, scale=0.1)
    grads = [(rng.standard_normal(W.shape).astype(dtype), rng.standard_normal(b.shape)
              .astype(dtype)) for W, b in params]
    grads[0][0][0, :5] = dtype(1e-30) if dtype == np.float32 else 1e-160  # flushed to 0
    grads[0][0][1] = 0  # zeros beside them, and zeros alone (an unlit pixel's row)
    grads[1][0][:2] = 0
    grads[1][0][2] = -0.0
    state = init_state(params, opt)
    want = [[W.copy(), b.copy()] for W, b in params]
    moments = [[[a.copy() for a in pair] for pair in slot] for slot in state]
    dt = np.dtype(dtype).type
    for t in (1, 2, 3):
        ref.apply_update(params, grads, state, opt, 0.01, t)
        for i, pair in enumerate(want):
            for j, p in enumerate(pair):
                g = grads[i][j]
                thr = dt(grad_flush_threshold(opt, np.dtype(dtype)))
                g = np.where(np.abs(g) < thr, dt(0), g)
                m, v = moments[0][i][j], moments[1][i][j]
                m[...] = dt(opt.beta1) * m + dt(1 - opt.beta1) * g
                v[...] = dt(opt.beta2) * v + dt(1 - opt.beta2) * g * g
                p -= dt(0.01) * (m / dt(1 - opt.beta1 ** t)) / (
                    np.sqrt(v / dt(1 - opt.beta2 ** t)) + dt(opt.eps_at(t)))
    for (W, b), (Ww, bw) in zip(params, want):
        np.testing.assert_array_equal(W, Ww)
        np.testing.assert_array_equal(b, bw)
    assert np.all(state[1][0][0][0, :5] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_adam_flushes_only_for_nonzero_tiny_gradients(dtype):
    """``numpy_ref._some_tiny``: zeros (either sign), NaN, infinity and the threshold itself
    do not call for the flush; one entry between 0 and the threshold does, whatever its sign
    and place."""
    thr = np.dtype(dtype).type(grad_flush_threshold(Optimizer("adam"), np.dtype(dtype)))
    g = np.zeros((7, 5), dtype)
    g[0, 0], g[1, 1], g[2, 2], g[3, 3], g[4, 4] = -0.0, np.nan, -np.inf, thr, 0.5
    scratch = np.empty_like(g)
    assert not ref._some_tiny(g, thr, scratch)
    assert not ref._some_tiny(g[:0], thr, scratch[:0])
    tiny = (thr * dtype(0.5), -np.nextafter(thr, dtype(0)), np.finfo(dtype).smallest_subnormal)
    for value in tiny:
        for at in ((0, 0), (6, 4), (3, 2)):
            h = g.copy()
            h[at] = value
            assert ref._some_tiny(h, thr, scratch), (value, at)


def test_reference_skips_the_inputs_gradient():
    """linear_backward without W gives the same dW, db and no input gradient."""
    rng = np.random.default_rng(0)
    a, dz, W = rng.random((6, 5)), rng.random((6, 3)), rng.random((5, 3))
    dW, db, da = ref.linear_backward(dz, a, W)
    dW0, db0, da0 = ref.linear_backward(dz, a, None)
    np.testing.assert_array_equal(dW0, dW)
    np.testing.assert_array_equal(db0, db)
    np.testing.assert_allclose(da, dz @ W.T)
    assert da0 is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode", [fast.MODE_CSR, fast.MODE_DENSE, fast.MODE_DENSE_SKIP,
                                  fast.MODE_GEMM])
@pytest.mark.parametrize("sizes", [[50, 16, 8, 5], [50, 24, 8, 5]], ids=["narrow", "wide"])
def test_epoch_kernel_matches_reference_loop(dtype, optimizer, mode, sizes):
    """Same batch order, a short last batch, weight decay: the same weights after it."""
    n, batch = 103, 10
    params_f = random_net(sizes, dtype, scale=0.3)
    params_r = [(W.copy(), b.copy()) for W, b in params_f]
    opt = Optimizer(optimizer, weight_decay=1e-3)
    state_f, state_r = init_state(params_f, opt), init_state(params_r, opt)
    x = random_pixels(n, sizes[0])
    y = np.random.default_rng(0).integers(0, sizes[-1], n)
    order = np.random.default_rng(1).permutation(n)
    lrs = np.linspace(0.05, 0.01, 11) if optimizer != "adam" else np.full(11, 3e-3)
    data = fast.prepare(x, mode=mode)
    for t0 in (0, 11):  # two calls: state and the Adam step counter carry over
        losses_f, correct_f = fast.train_epoch(params_f, state_f, opt, data, y, order, batch,
                                               lrs, t0)
        losses_r, correct_r = ref.train_epoch(params_r, state_r, opt, x, y, order, batch,
                                              lrs, t0)
        assert correct_f == correct_r
        close(losses_f, losses_r, dtype)
    rtol, atol = tol(dtype)
    params_close(params_f, params_r, dtype)
    for slot_f, slot_r in zip(state_f, state_r):
        for pair_f, pair_r in zip(slot_f, slot_r):
            for a, b in zip(pair_f, pair_r):
                np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10)


def test_epoch_kernel_stops_before_a_nonfinite_update():
    params = random_net([20, 8, 3], np.float64)
    params[0][0][0, 0] = np.inf
    before = [(W.copy(), b.copy()) for W, b in params]
    x = np.full((10, 20), 255, dtype=np.uint8)
    y = np.zeros(10, dtype=np.int64)
    losses, _ = fast.train_epoch(params, [], Optimizer("sgd"), fast.prepare(x), y,
                                 np.arange(10), 5, np.full(2, 0.1), 0)
    assert len(losses) == 1 and not np.isfinite(losses[0])
    for (W, b), (W0, b0) in zip(params, before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_inputs_go_to_blas_and_match_the_reference(dtype):
    """Standardized-like float features: prepare chooses BLAS (MODE_GEMM), and a run of steps
    with a short last batch ends where the reference loop does."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((75, 40)).astype(dtype)
    y = rng.integers(0, 4, 75)
    data = fast.prepare(x)
    assert data.mode == fast.MODE_GEMM
    assert fast.prepare(random_pixels(75, 40)).mode == fast.MODE_CSR  # 20% nonzero: the CSR
    params_f = random_net([40, 32, 16, 4], dtype, scale=0.2)
    params_r = [(W.copy(), b.copy()) for W, b in params_f]
    opt = Optimizer("adam")
    state_f, state_r = init_state(params_f, opt), init_state(params_r, opt)
    order = rng.permutation(75)
    losses_f, correct_f = fast.train_epoch(params_f, state_f, opt, data, y, order, 16,
                                           np.full(5, 1e-2), 0)
    losses_r, correct_r = ref.train_epoch(params_r, state_r, opt, x, y, order, 16,
                                          np.full(5, 1e-2), 0)
    assert correct_f == correct_r
    close(losses_f, losses_r, dtype)
    params_close(params_f, params_r, dtype)


def test_blas_path_is_bit_identical_whatever_the_threads():
    """BLAS sums a product's inner dimension differently on 1 and 2 threads; the dense path
    runs it on a fixed count, so Numba's thread count does not change a bit."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 784)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    results = []
    for n in (1, fast.n_parts(1 << 30)):
        params = random_net([784, 24, 10], np.float32, scale=0.05)
        opt = Optimizer("adam")
        with fast.threads(n):
            fast.train_epoch(params, init_state(params, opt), opt, fast.prepare(x), y,
                             np.arange(300), 64, np.full(5, 1e-3), 0)
        results.append(params)
    for (W1, b1), (W2, b2) in zip(*results):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()


def test_same_thread_count_is_bit_identical():
    x = random_pixels(300, 784)
    y = np.random.default_rng(0).integers(0, 10, 300)
    results = []
    for _ in range(2):
        params = random_net([784, 24, 10], np.float32, scale=0.05)
        opt = Optimizer("adam")
        fast.train_epoch(params, init_state(params, opt), opt, fast.prepare(x), y,
                         np.arange(300), 64, np.full(5, 1e-3), 0)
        results.append(params)
    for (W1, b1), (W2, b2) in zip(*results):
        assert W1.tobytes() == W2.tobytes() and b1.tobytes() == b2.tobytes()


@pytest.mark.parametrize("sizes", [[784, 128, 10], [784, 10, 10]])
def test_batch_calls_reuse_buffers_without_leftovers(sizes):
    """loss_and_grads and train_step keep their work buffers for the next call of the same
    shapes: a call after them, and after calls refused for their labels, gives the same bits
    as the first."""
    x = random_pixels(128, 784)
    y = np.random.default_rng(0).integers(0, 10, 128)
    params = random_net(sizes, np.float32, scale=0.05)
    loss0, grads0 = fast.loss_and_grads(params, x, y)
    fast.train_step(random_net(sizes, np.float32, scale=0.05), x, y, 0.1)
    with pytest.raises(InputError, match="labels must be in"):
        fast.loss_and_grads(params, x, y + 100)  # labels out of range: refused, not read
    with pytest.raises(InputError, match="labels must be in"):
        fast.train_step(params, x, y - 1, 0.1)
    for _ in range(2):
        loss, grads = fast.loss_and_grads(params, x, y)
        assert loss == loss0
        for (dW, db), (dW0, db0) in zip(grads, grads0):
            assert dW.tobytes() == dW0.tobytes() and db.tobytes() == db0.tobytes()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d_in=st.integers(1, 60), hidden=st.lists(st.integers(1, 20),
       max_size=2), classes=st.integers(2, 12), dense=st.booleans(), seed=st.integers(0, 99))
def test_random_shapes_float64(n, d_in, hidden, classes, dense, seed):
    sizes = [d_in, *hidden, classes]
    params = random_net(sizes, np.float64, seed=seed)
    x = random_pixels(n, d_in, seed=seed, density=0.9 if dense else 0.2)
    y = np.random.default_rng(seed).integers(0, classes, n)
    close(fast.forward(params, x), ref.forward(params, x), np.float64)
    loss_f, grads_f = fast.loss_and_grads(params, x, y)
    loss_r, grads_r = ref.loss_and_grads(params, x, y)
    close(loss_f, loss_r, np.float64)
    for gf, gr in zip(grads_f, grads_r):
        close(gf[0], gr[0], np.float64)
        close(gf[1], gr[1], np.float64)


_OTHER_CPU_SCRIPT = """
import numpy as np
from fastmnist.backends import numba_cpu as fast, numpy_ref as ref
rng = np.random.default_rng(0)
for sizes in ([784, 10, 10], [50, 24, 5], [30, 7, 12, 3]):
    for dtype in (np.float64, np.float32):
        params = [(rng.standard_normal((a, b)).astype(dtype) * 0.3,
                   rng.standard_normal(b).astype(dtype) * 0.3)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        x = (rng.random((70, sizes[0])) < 0.3) * rng.integers(1, 256, (70, sizes[0]))
        x = x.astype(np.uint8)
        y = rng.integers(0, sizes[-1], 70)
        rtol = 1e-10 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(fast.forward(params, x), ref.forward(params, x),
                                   rtol=rtol, atol=rtol)
        lf, gf = fast.loss_and_grads(params, x, y)
        lr, gr = ref.loss_and_grads(params, x, y)
        np.testing.assert_allclose(lf, lr, rtol=rtol)
        for (a, b), (c, d) in zip(gf, gr):
            np.testing.assert_allclose(a, c, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(b, d, rtol=rtol, atol=rtol)
print("ok")
"""


@background.job(cost=55)
def on_haswell(folder):
    return background.run([sys.executable, "-c", _OTHER_CPU_SCRIPT], timeout=600,
                          env=background.env(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="",
                                             NUMBA_CACHE_DIR=folder))


@pytest.mark.slow
@pytest.mark.background(on_haswell)
def test_vector_kernels_on_a_cpu_without_avx512():
    """The 16-lane intrinsics (``_lanes``) compiled for an AVX2-only CPU (haswell: two
    registers per vector; masked loads lowered another way) agree with the reference: the
    development machine has AVX-512, users' machines may not. A fresh process and cache
    folder, since Numba compiles for one CPU per process; NUMBA_CPU_FEATURES="" too, or Numba
    would pass the host's features (AVX-512) to LLVM under the name haswell."""
    out = on_haswell.result()
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


ACTIVATIONS = ["relu", "tanh", "logistic", "identity"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_and_their_backward(dtype, activation):
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((40, 33)) * 6).astype(dtype)
    z[0, :3] = [0, 80, -80]  # the logistic saturates without overflowing
    da = rng.standard_normal(z.shape).astype(dtype)
    a_f, a_r = fast.activate(z, activation), ref.activate(z, activation)
    assert a_f.dtype == dtype and np.isfinite(a_f).all()
    close(a_f, a_r, dtype)
    close(fast.activate_backward(da, a_r, activation),
          ref.activate_backward(da, a_r, activation), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS[1:])
def test_forward_and_grads_of_other_activations(dtype, activation):
    """Every layer shape of SHAPES (narrow, wide, deep) with tanh, logistic and identity."""
    for n, sizes in SHAPES:
        params = random_net(sizes, dtype, seed=n)
        x = inputs(n, sizes[0], dtype, "uint8", seed=n)
        y = np.random.default_rng(n).integers(0, sizes[-1], n)
        close(fast.forward(params, x, activation), ref.forward(params, x, activation), dtype)
        loss_f, grads_f = fast.loss_and_grads(params, x, y, activation)
        loss_r, grads_r = ref.loss_and_grads(params, x, y, activation)
        close(loss_f, loss_r, dtype)
        for pair_f, pair_r in zip(grads_f, grads_r):
            for a, b in zip(pair_f, pair_r):
                close(a, b, dtype)
        # the activation changes the result: not the ReLU path under another name
        assert len(sizes) == 2 or not np.allclose(ref.forward(params, x, activation),
                                                  ref.forward(params, x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [[50, 16, 8, 5], [50, 24, 8, 5], [784, 10, 10]],
                         ids=["narrow", "wide", "narrow2"])
@pytest.mark.parametrize("mode", [fast.MODE_CSR, fast.MODE_GEMM], ids=["csr", "gemm"])
def test_epoch_kernel_nesterov_scale_and_activations(dtype, activation, sizes, mode):
    """Nesterov momentum, a uint8 scale of 1 (features used as given) and each activation:
    the epoch kernel (rows or BLAS) and the reference loop end with the same weights."""
    n, batch = 53, 10
    params_f = random_net(sizes, dtype, scale=0.02)
    params_r = [(W.copy(), b.copy()) for W, b in params_f]
    opt = Optimizer("nesterov", weight_decay=1e-3)
    state_f, state_r = init_state(params_f, opt), init_state(params_r, opt)
    x = random_pixels(n, sizes[0])
    y = np.random.default_rng(0).integers(0, sizes[-1], n)
    order = np.random.default_rng(1).permutation(n)
    lrs = np.full(6, 1e-3)
    losses_f, correct_f = fast.train_epoch(params_f, state_f, opt,
                                           fast.prepare(x, mode=mode, scale=1.0), y, order,
                                           batch, lrs, 0, activation=activation)
    losses_r, correct_r = ref.train_epoch(params_r, state_r, opt, ref.prepare(x, scale=1.0),
                                          y, order, batch, lrs, 0, activation=activation)
    assert correct_f == correct_r
    close(losses_f, losses_r, dtype)
    rtol, atol = tol(dtype)
    params_close(params_f, params_r, dtype)
    # scale 1 is not the default 1/255
    assert not np.allclose(ref.forward(params_r, ref.prepare(x, scale=1.0)),
                           ref.forward(params_r, x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["softmax", "logistic", "identity"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("sizes", [[50, 16, 8, 5], [50, 24, 3], [9, 1], [784, 10, 10]],
                         ids=["narrow", "wide", "one-output", "narrow2"])
@pytest.mark.parametrize("mode", [fast.MODE_CSR, fast.MODE_GEMM], ids=["csr", "gemm"])
def test_output_heads_sample_weights_and_l2(dtype, head, weighted, sizes, mode):
    """Logistic and identity outputs, row weights and scikit-learn's L2 (alpha / batch) in
    forward, loss_and_grads and the epoch kernel: the same as the reference."""
    if head == "softmax" and sizes[-1] == 1:
        pytest.skip("softmax needs two classes")
    n, batch = 37, 10
    x = random_pixels(n, sizes[0], seed=2)
    y = random_targets(head, n, sizes[-1], seed=3)
    sw = np.random.default_rng(4).random(n) + 0.1 if weighted else None
    params_f = random_net(sizes, dtype, seed=1, scale=0.1)
    params_r = [(W.copy(), b.copy()) for W, b in params_f]
    close(fast.forward(params_f, x, "tanh", head), ref.forward(params_r, x, "tanh", head), dtype)
    loss_f, grads_f = fast.loss_and_grads(params_f, x, y, "tanh", head, sw)
    loss_r, grads_r = ref.loss_and_grads(params_r, x, y, "tanh", head, sw)
    close(loss_f, loss_r, dtype)
    for pair_f, pair_r in zip(grads_f, grads_r):
        for a, b in zip(pair_f, pair_r):
            close(a, b, dtype)
    # Adam in float32 turns a rounding difference of a near-zero gradient into a step of
    # +-lr (m / sqrt(v) is its sign): compared in float64 only
    opt = Optimizer("adam" if dtype == np.float64 else "nesterov")
    state_f, state_r = init_state(params_f, opt), init_state(params_r, opt)
    order = np.random.default_rng(1).permutation(n)
    lrs = np.full(4, 1e-2)
    out_f = fast.train_epoch(params_f, state_f, opt, fast.prepare(x, mode=mode, scale=0.01), y,
                             order, batch, lrs, 0, "logistic", head, sw, 1e-2)
    out_r = ref.train_epoch(params_r, state_r, opt, ref.prepare(x, scale=0.01), y, order,
                            batch, lrs, 0, "logistic", head, sw, 1e-2)
    assert out_f[1] == out_r[1]
    close(out_f[0], out_r[0], dtype)
    rtol, atol = tol(dtype)
    params_close(params_f, params_r, dtype)


def test_sample_weights_are_repeated_rows():
    """Integer row weights give the loss and gradients of the data with rows repeated."""
    params = random_net([12, 6, 3], np.float64, seed=5)
    x = random_pixels(8, 12, seed=6)
    y = np.random.default_rng(7).integers(0, 3, 8)
    sw = np.array([1, 2, 0, 3, 1, 1, 2, 1])
    rep = np.repeat(np.arange(8), sw)
    for be in (fast, ref):
        loss_w, grads_w = be.loss_and_grads(params, x, y, sample_weight=sw.astype(float))
        loss_r, grads_r = be.loss_and_grads(params, x[rep], y[rep])
        np.testing.assert_allclose(loss_w, loss_r, rtol=1e-12)
        for pair_w, pair_r in zip(grads_w, grads_r):
            for a, b in zip(pair_w, pair_r):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
