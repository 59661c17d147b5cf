"""MLP: construction, initialization, prediction, save/load round trip."""

import os
import signal

import numpy as np
import pytest
from conftest import random_pixels

import fastmnist as fm
from fastmnist.errors import InputError, ModelFileError


@pytest.mark.parametrize("hidden", [(), (10,), (32, 16), 64])
def test_shapes_and_params(hidden):
    model = fm.MLP(hidden=hidden, seed=1)
    widths = [784, *((hidden,) if isinstance(hidden, int) else hidden), 10]
    assert model.sizes == widths
    for (W, b), d_in, d_out in zip(model.params, widths[:-1], widths[1:]):
        assert W.shape == (d_in, d_out) and b.shape == (d_out,) and W.dtype == np.float32
    X = random_pixels(7, 784)
    p = model.predict_proba(X)
    assert p.shape == (7, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert model.predict(X).shape == (7,)
    assert 0.0 <= model.score(X, np.zeros(7, int)) <= 1.0


def test_inits():
    he = fm.MLP(hidden=(256,), init="he", seed=0).params[0][0]
    assert abs(he.std() - np.sqrt(2 / 784)) < 0.005
    uni = fm.MLP(hidden=(10,), init="uniform", dtype="float64", seed=0).params
    assert all(-0.5 <= a.min() and a.max() < 0.5 for pair in uni for a in pair)
    assert np.abs(uni[0][1]).max() > 0  # biases drawn too, as in the notebook
    assert fm.MLP(seed=3).params[0][0].tobytes() == fm.MLP(seed=3).params[0][0].tobytes()
    assert fm.MLP(seed=3).params[0][0].tobytes() != fm.MLP(seed=4).params[0][0].tobytes()


def test_fit_sets_only_attributes_that_init_defines():
    """Every attribute fit sets on the model exists from __init__ on (issue 13): a finished
    run, an interrupted one (Ctrl-C leaves a checkpoint) and one that resumes from it."""
    X, y = random_pixels(40, 784), np.arange(40) % 10
    model = fm.MLP(hidden=(6,), seed=0)
    defined = set(vars(model))

    def ctrl_c(epoch, history):
        os.kill(os.getpid(), signal.SIGINT)
    kw = dict(epochs=2, batch_size=16, backend="numpy", progress=False,
              validation_data=(X[:10], y[:10]))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, on_epoch=ctrl_c, **kw)
    assert model.checkpoint is not None and set(vars(model)) == defined
    model.fit(X, y, checkpoint=model.checkpoint, **kw)
    assert model.checkpoint is None and len(model.history["loss"]) == 2
    model.fit(X, y, ema=0.5, shift=1, **kw)
    assert set(vars(model)) == defined


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_ignored_sigint_stays_ignored(backend):
    """Where SIGINT is ignored (nohup, a script's background job), fit installs no handler of
    its own: a SIGINT does not stop it, and SIGINT is still ignored after."""
    X, y = random_pixels(40, 784), np.arange(40) % 10
    sent = []

    def ctrl_c(epoch, history):
        sent.append(epoch)
        os.kill(os.getpid(), signal.SIGINT)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model = fm.MLP(hidden=(6,), seed=0)
        try:
            model.fit(X, y, epochs=2, batch_size=16, backend=backend, progress=False,
                      threads=1, on_epoch=ctrl_c)
        except KeyboardInterrupt:  # a failure, not the end of the whole session
            pytest.fail("an ignored SIGINT stopped fit")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert sent == [0, 1] and len(model.history["loss"]) == 2 and model.checkpoint is None


@pytest.mark.parametrize("bad", [dict(hidden=(0,)), dict(dtype="float16"), dict(init="zeros"),
                                 dict(hidden=("a",)), dict(n_classes=1)])
def test_bad_construction(bad):
    with pytest.raises(InputError):
        fm.MLP(**bad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    model = fm.MLP(hidden=(12, 7), dtype=dtype, seed=5)
    X = random_pixels(40, 784)
    y = np.arange(40) % 10
    model.fit(X, y, epochs=2, batch_size=8, backend="numpy", progress=False)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = fm.MLP.load(path)
    assert loaded.sizes == model.sizes and loaded.dtype == model.dtype
    for (W, b), (W2, b2) in zip(model.params, loaded.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert loaded.history == model.history
    assert loaded.config["epochs"] == 2
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with np.load(path, allow_pickle=False) as f:  # plain arrays, no pickle needed
        assert int(f["format_version"]) == 1


def test_load_refuses_bad_files(tmp_path):
    model = fm.MLP(hidden=(4,))
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ModelFileError):
        fm.MLP.load(truncated)
    arrays = dict(np.load(good))
    arrays["format_version"] = np.array(99)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ModelFileError, match="newer"):
        fm.MLP.load(newer)
    arrays = dict(np.load(good))
    arrays["W0"] = arrays["W0"][:10]
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, **arrays)
    with pytest.raises(ModelFileError, match="shapes"):
        fm.MLP.load(bad_shape)
    arrays = dict(np.load(good))
    del arrays["b1"]
    missing = tmp_path / "missing.npz"
    np.savez(missing, **arrays)
    with pytest.raises(ModelFileError, match="missing"):
        fm.MLP.load(missing)
    arrays = dict(np.load(good))
    arrays["config"] = np.array([{"evil": 1}], dtype=object)
    pickled = tmp_path / "pickle.npz"
    np.savez(pickled, **arrays)
    with pytest.raises(ModelFileError):
        fm.MLP.load(pickled)


@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
def test_activation_saved_loaded_and_used(tmp_path, activation):
    model = fm.MLP(hidden=(6,), n_features=12, n_classes=3, pixels=False,
                   activation=activation, seed=1)
    x = np.random.default_rng(0).standard_normal((8, 12))
    relu_twin = fm.MLP(hidden=(6,), n_features=12, n_classes=3, pixels=False, seed=1)
    assert not np.allclose(model.predict_proba(x), relu_twin.predict_proba(x))
    for backend in ("numpy", "numba"):
        np.testing.assert_allclose(model.predict_proba(x, backend=backend),
                                   model.predict_proba(x), rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "m.npz")
    back = fm.MLP.load(tmp_path / "m.npz")
    assert back.activation == activation
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))


def test_model_file_without_activation_loads_as_relu(tmp_path):
    """Files written before the activation was saved are ReLU networks."""
    model = fm.MLP(hidden=(5,), n_features=7, n_classes=3, seed=2)
    arrays = model._arrays()
    del arrays["activation"]
    np.savez(tmp_path / "old.npz", **arrays)
    back = fm.MLP.load(tmp_path / "old.npz")
    assert back.activation == "relu"
    x = random_pixels(4, 7)
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))


def test_unknown_activation_refused(tmp_path):
    with pytest.raises(InputError, match="activation"):
        fm.MLP(activation="softplus")
    model = fm.MLP(hidden=(5,), n_features=7, n_classes=3)
    arrays = model._arrays()
    arrays["activation"] = np.array("softplus")
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match="activation"):
        fm.MLP.load(tmp_path / "bad.npz")
