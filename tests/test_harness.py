"""The harness every speed figure comes from: its contenders are right, its checks can fail."""

import numpy as np
import pytest
from conftest import learnable

from fastmnist import compat
from fastmnist.backends import numba_cpu, numpy_ref
from fastmnist.model import init_params
from fastmnist.optim import Optimizer
from fastmnist.tools import head_to_head
from fastmnist.tools.harness import checks, epochs, inference, timing


def _start(sizes=(784, 16, 10), dtype="float64", init="he"):
    return init_params(list(sizes), np.dtype(dtype), init, np.random.default_rng(0))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_user_loop_is_the_reference_math(optimizer, dtype):
    X, y = learnable(512)
    order = np.random.default_rng(1).permutation(512).astype(np.int64)
    lrs = np.full(4, 0.01)
    opt = Optimizer(optimizer)
    Xf = epochs.user_data(X, dtype)
    assert Xf.dtype == dtype and Xf.max() <= 1

    def make(params, order, lrs):
        return epochs.numpy_user_epoch(params, opt, Xf, y, order, lrs, 128)
    checks.check_first_steps("numpy", make, _start(dtype=dtype), opt, X, y, order, lrs,
                             batch_size=128)


def test_a_wrong_contender_fails_its_check():
    X, y = learnable(512)
    order = np.arange(512, dtype=np.int64)
    lrs = np.full(4, 0.05)
    opt = Optimizer("sgd")

    def twice_the_lr(params, order, lrs):
        return epochs.numpy_user_epoch(params, opt, epochs.user_data(X, "float64"), y, order,
                                       2 * lrs, 128)
    with pytest.raises(AssertionError):
        checks.check_first_steps("wrong", twice_the_lr, _start(), opt, X, y, order, lrs,
                                 batch_size=128)


def test_notebook_iteration_is_the_notebooks_code():
    X, y = learnable(300)
    start = _start((784, 10, 10), init="uniform")
    X_cols = X.T / 255.0
    epoch = epochs.notebook_iteration(X_cols, y, 0.2, start)
    epoch.run()
    (W1, b1), (W2, b2) = start
    want = compat.gradient_descent(X_cols, y, 0.2, 1, params=(
        W1.T.copy(), b1[:, None].copy(), W2.T.copy(), b2[:, None].copy()), verbose=False)
    got = epoch.params()
    for a, b in zip([got[0][0].T, got[0][1][:, None], got[1][0].T, got[1][1][:, None]], want):
        np.testing.assert_array_equal(a, b)


def test_fastmnist_epoch_carries_the_optimizer_state_on():
    X, y = learnable(256)
    order = np.arange(256, dtype=np.int64)
    params = _start()
    epoch = epochs.fastmnist_epoch(numba_cpu, params, Optimizer("adam"), numba_cpu.prepare(X),
                                   y, order, np.full(2, 0.01))
    first, second = epoch.run(), epoch.run()
    assert len(first) == len(second) == 2 and second[-1] < first[0]
    assert epoch.params() is params


@pytest.mark.slow  # times every contender of every case
@pytest.mark.parametrize("name", list(head_to_head.CASES))
def test_every_case_validates_and_times_its_contenders(name):
    """Each case of `fastmnist bench` on a small slice: every contender available here passes
    its check against the reference and gets a time."""
    X, y = learnable(1024)
    case = head_to_head.CASES[name]
    times = head_to_head.run_case(case, X, y, repeats=1, threads=1)
    have = set(head_to_head.available_peers())
    want = [c for c in case.contenders if c.partition("-")[0] not in ("torch", "jax")
            or (c in have and (c == "torch" or case.optimizer == "sgd"))]
    assert list(times) == want
    assert all(len(t) == 1 and t[0] > 0 for t in times.values())


def test_fit_contender_times_itself_per_epoch():
    X, y = learnable(512)
    case = head_to_head.CASES["epoch-784-10-10"]
    run = head_to_head._fit_contender("fit", case, X, y, 128, 1)
    seconds, model = run()
    assert 0 < seconds and len(model.history["loss"]) == case.fit_epochs
    calls = []
    times = timing.interleaved({"self-timed": lambda: (calls.append(1) or 123.0, None)},
                               repeats=2, warmup=0, settle=0)
    assert times == {"self-timed": [123.0, 123.0]} and len(calls) == 2


def test_interleaved_reverses_the_order_every_other_round():
    """A B C, C B A, A B C: no contender always runs first or after the same one."""
    calls = []
    times = timing.interleaved({k: (lambda k=k: calls.append(k)) for k in "ABC"}, repeats=3,
                               warmup=1, settle=0)
    assert "".join(calls) == "ABC" + "ABC" + "CBA" + "ABC"
    assert list(times) == ["A", "B", "C"] and all(len(t) == 3 for t in times.values())


def test_a_contender_in_its_own_process_reports_its_own_time(capsys):
    """The peers' scripts run each contender in a process of its own; what it says last (JSON
    seconds and accuracy) is its time, whatever it printed before."""
    code = 'import json; print("warming up"); print(json.dumps({"seconds": 1.5, "accuracy": 0.9}))'
    run = timing.in_own_process(["-c", code], "peer")
    assert run() == (1.5, 0.9)
    assert capsys.readouterr().out == "peer   1.50 s  test accuracy 0.9000\n"
    times = timing.interleaved({"peer": run}, repeats=2, warmup=0, settle=0)
    assert times == {"peer": [1.5, 1.5]}


def test_flops():
    sizes = [784, 128, 10]
    dense = timing.train_flops(sizes, 100)
    assert timing.sparse_train_flops(sizes, 100, 100 * 784) == dense
    assert timing.sparse_train_flops(sizes, 100, 100 * 150) < dense


def test_standardized_features_are_dense_and_centred():
    X, _ = learnable(500)
    Xs = head_to_head.standardized(X)
    assert Xs.dtype == np.float32 and np.isfinite(Xs).all()
    np.testing.assert_allclose(Xs.mean(axis=0), 0, atol=1e-4)
    assert (Xs != 0).mean() > 0.5


def test_reference_steps_are_the_reference():
    X, y = learnable(256)
    order = np.arange(256, dtype=np.int64)
    start = _start()
    losses, params = checks.reference_steps(start, Optimizer("sgd"), X, y, order,
                                            np.full(2, 0.1), steps=2, batch_size=128)
    want = epochs.copy_params(start)
    for s in range(2):
        rows = order[s * 128:(s + 1) * 128]
        numpy_ref.train_step(want, X[rows], y[rows], 0.1)
    checks.check_params_close("reference", params, want, "float64")


def test_a_wrong_adam_fails_its_check_in_float32():
    """Adam's float32 tolerance (1% of lr a step) still catches a wrong second moment."""
    X, y = learnable(512)
    order = np.arange(512, dtype=np.int64)
    lrs = np.full(4, 1e-3)
    opt = Optimizer("adam")
    wrong = Optimizer("adam", beta2=0.9)

    def make(params, order, lrs):
        return epochs.numpy_user_epoch(params, wrong, epochs.user_data(X, "float32"), y, order,
                                       lrs, 128)
    with pytest.raises(AssertionError):
        checks.check_first_steps("wrong", make, _start(dtype="float32"), opt, X, y, order,
                                 lrs, batch_size=128)


def test_inference_contenders_are_checked_before_they_are_timed(tmp_path):
    """Every inference contender that runs here gives the reference's probabilities; one
    that does not (a predict_proba off by a little) is refused before it is timed."""
    import fastmnist as fm
    model, _ = fm.recipes.get("default")
    x = np.random.default_rng(0).integers(0, 256, (50, 784)).astype(np.uint8)
    runs = inference.contenders(model, x, folder=str(tmp_path))
    assert {"fastmnist-numba", "fastmnist-numpy"} <= set(runs)
    for run in runs.values():
        assert run().shape == (50, 10)
    model.predict_proba = lambda x, backend=None: numpy_ref.forward(model.params, x) * 1.001
    with pytest.raises(AssertionError):
        inference.contender("fastmnist-numba", model, x)
