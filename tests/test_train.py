"""The training loop: optimizers, schedules, history, early stopping, guards."""

import numpy as np
import pytest
from conftest import learnable

import fastmnist as fm
from fastmnist.errors import DivergedError, InputError
from fastmnist.optim import lr_schedule


def toy(n=600, seed=0):
    """A learnable 10-class problem: the label is which pixel band is bright."""
    return learnable(n, seed)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.2), ("momentum", 0.05), ("adam", 3e-3)])
def test_training_reduces_loss(backend, optimizer, lr):
    X, y = toy()
    model = fm.MLP(hidden=(32,), seed=0)
    h = model.fit(X, y, epochs=4, batch_size=32, lr=lr, optimizer=optimizer, backend=backend,
                  validation_data=(X[:100], y[:100]), progress=False)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.9
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr"}
    assert all(len(v) == 4 for v in h.values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_train_alike(dtype):
    X, y = toy(300)
    results = []
    for backend in ("numpy", "numba"):
        model = fm.MLP(hidden=(16, 8), dtype=dtype, seed=1)
        model.fit(X, y, epochs=2, batch_size=50, lr=0.05, optimizer="momentum",
                  schedule="cosine", backend=backend, progress=False)
        results.append(model)
    tol = 1e-9 if dtype == "float64" else 1e-4
    for (W1, b1), (W2, b2) in zip(results[0].params, results[1].params):
        np.testing.assert_allclose(W1, W2, atol=tol)
        np.testing.assert_allclose(b1, b2, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_train_alike_with_shifts_and_label_smoothing(dtype):
    """fit's tricks reach both backends' epochs: the same weights, and not the plain run's."""
    X, y = toy(300)
    results = []
    tricks = dict(shift=2, affine=(10, 0.1, 5), label_smoothing=0.1, max_norm=0.9, dropout=0.3,
                  input_dropout=0.1)
    for backend, kw in (("numpy", tricks), ("numba", tricks), ("numba", {})):
        model = fm.MLP(hidden=(16,), dtype=dtype, seed=1)
        model.fit(X, y, epochs=2, batch_size=50, lr=0.01, optimizer="adam", backend=backend,
                  progress=False, **kw)
        assert model.config["shift"] == kw.get("shift", 0)
        assert model.config["affine"] == (list(kw["affine"]) if kw else None)
        assert model.config["label_smoothing"] == kw.get("label_smoothing", 0.0)
        assert model.config["max_norm"] == kw.get("max_norm", 0.0)
        assert model.config["dropout"] == kw.get("dropout", 0.0)
        results.append(model)
    tol = 1e-9 if dtype == "float64" else 1e-4
    for (W1, b1), (W2, b2) in zip(results[0].params, results[1].params):
        np.testing.assert_allclose(W1, W2, atol=tol)
        np.testing.assert_allclose(b1, b2, atol=tol)
    assert not np.allclose(results[1].params[0][0], results[2].params[0][0], atol=tol)
    for W, _ in results[1].params:  # the max-norm held
        assert np.sqrt((W.astype(np.float64) ** 2).sum(axis=0)).max() <= 0.9 * (1 + 1e-5)


def test_full_batch_and_float_inputs():
    X, y = toy(200)
    model = fm.MLP(hidden=(10,), dtype="float64", init="uniform")
    h = model.fit(X / 255.0, y, epochs=30, batch_size=None, lr=0.2, backend="numba",
                  shuffle=False, progress=False)
    assert len(h["loss"]) == 30 and h["loss"][-1] < h["loss"][0]


@pytest.mark.parametrize("name", ["constant", "cosine", "onecycle", "linear", "step", None])
def test_schedules(name):
    lrs = lr_schedule(name, 0.1, 100)
    assert lrs.shape == (100,) and np.all(lrs >= 0) and np.all(lrs <= 0.1 + 1e-12)
    if name == "cosine":
        assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    if name == "onecycle":
        assert lrs[0] == pytest.approx(0.1 / 25) and lrs.max() == pytest.approx(0.1)
        assert np.argmax(lrs) == pytest.approx(29, abs=1)


def test_early_stopping_restores_best():
    X, y = toy(400)
    model = fm.MLP(hidden=(16,), seed=0)
    h = model.fit(X, y, epochs=30, batch_size=20, lr=0.5, backend="numba",
                  validation_data=(X[:50], y[:50]), early_stopping=2, progress=False)
    assert len(h["val_accuracy"]) < 30
    assert model.score(X[:50], y[:50]) == pytest.approx(max(h["val_accuracy"]))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_divergence_stops_and_keeps_finite_weights(backend):
    X, y = toy(200)
    model = fm.MLP(hidden=(16,), seed=0)
    with pytest.raises(DivergedError, match="non-finite"):
        model.fit(X, y, epochs=5, batch_size=20, lr=1e30, backend=backend, progress=False)
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in model.params)


def test_same_seed_bit_identical_and_threads():
    X, y = toy(500)
    weights = []
    for threads in (1, 1, 2, 2):
        model = fm.MLP(hidden=(20,), seed=3)
        model.fit(X, y, epochs=2, batch_size=64, lr=0.05, optimizer="adam", backend="numba",
                  threads=threads, progress=False)
        weights.append(b"".join(W.tobytes() + b.tobytes() for W, b in model.params))
    assert weights[0] == weights[1] and weights[2] == weights[3]


def test_bad_arguments():
    X, y = toy(50)
    model = fm.MLP(hidden=(4,))
    for kwargs in (dict(epochs=0), dict(batch_size=0), dict(lr=-1), dict(optimizer="lbfgs"),
                   dict(schedule="zigzag"), dict(backend="cuda"), dict(early_stopping=2),
                   dict(label_smoothing=1.5), dict(shift=-1), dict(shift=1.5),
                   dict(affine=(90, 0, 0)), dict(affine=(1, 2)),
                   dict(max_norm=-1), dict(max_norm="big"), dict(dropout=1.0),
                   dict(input_dropout=-0.5), dict(ema=1.0), dict(ema=-0.1)):
        with pytest.raises(InputError):
            model.fit(X, y, progress=False, **kwargs)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ema_ends_with_the_average_and_refuses_early_stopping(backend):
    """fit(ema=d) ends with the weights' moving average: full-batch steps (one an epoch),
    the weights after each seen by on_epoch and averaged by hand, give the same weights; the
    raw weights are those of a run without the average."""
    X, y = toy(200)
    d = 0.7
    runs = []
    for ema in (0.0, d):
        model = fm.MLP(hidden=(8,), dtype="float64", seed=2)
        start = [(W.copy(), b.copy()) for W, b in model.params]
        seen = []

        def on_epoch(epoch, history, model=model, seen=seen):
            seen.append([(W.copy(), b.copy()) for W, b in model.params])

        model.fit(X, y, epochs=4, batch_size=None, lr=0.5, optimizer="sgd", backend=backend,
                  progress=False, ema=ema, on_epoch=on_epoch)
        runs.append((model, start, seen))
    for plain, averaged in zip(runs[0][2], runs[1][2]):
        for (W1, _), (W2, _) in zip(plain, averaged):
            np.testing.assert_array_equal(W1, W2)
    by_hand = [(W.copy(), b.copy()) for W, b in runs[1][1]]
    for weights in runs[1][2]:
        for (aW, ab), (W, b) in zip(by_hand, weights):
            aW += (1 - d) * (W - aW)
            ab += (1 - d) * (b - ab)
    for (aW, ab), (W, b) in zip(by_hand, runs[1][0].params):
        np.testing.assert_allclose(W, aW, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, ab, rtol=0, atol=1e-12)
    assert not np.allclose(runs[0][0].params[0][0], runs[1][0].params[0][0])
    with pytest.raises(InputError, match="early_stopping"):
        fm.MLP(hidden=(4,)).fit(X, y, ema=0.9, early_stopping=1, validation_data=(X, y),
                                progress=False)
