"""Evaluation plots: the PNG files are written, decodable, and `evaluate --plots` makes them."""

import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

import fastmnist as fm  # noqa: E402
from fastmnist import plots  # noqa: E402
from fastmnist.cli import main  # noqa: E402
from fastmnist.errors import InputError  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ("confusion_matrix.png", "worst_mistakes.png", "training_curves.png")


def assert_png(path, min_side=200):
    """`path` is a complete PNG that decodes to an image at least min_side pixels each way."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side
    assert image.std() > 0.01          # not a blank canvas


@pytest.fixture(scope="module")
def small():
    """(X_train, y_train, X_test, y_test): 3000/1000 MNIST images, or learnable random ones."""
    if os.environ.get("FASTMNIST_DATA"):
        X_train, y_train, X_test, y_test = fm.load_mnist()
        return X_train[:3000], y_train[:3000], X_test[:1000], y_test[:1000]
    rng = np.random.default_rng(0)
    centers = rng.integers(0, 256, (10, 784))
    y = rng.integers(0, 10, 4000)
    X = np.clip(centers[y] + rng.normal(0, 90, (4000, 784)), 0, 255).astype(np.uint8)
    return X[:3000], y[:3000].astype(np.uint8), X[3000:], y[3000:].astype(np.uint8)


@pytest.fixture(scope="module")
def trained_model(small):
    X_train, y_train, X_test, y_test = small
    model = fm.MLP(hidden=(32,), seed=0)
    model.fit(X_train, y_train, epochs=3, batch_size=64, lr=0.05, backend="numpy",
              validation_data=(X_test, y_test), progress=False)
    return model


def test_confusion_matrix_counts():
    cm = plots.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1], n_classes=3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 2]])
    with pytest.raises(InputError):
        plots.confusion_matrix([0, 1], [0], n_classes=3)


@pytest.mark.slow  # matplotlib draws every figure
def test_write_evaluation_plots(tmp_path, small, trained_model):
    _, _, X_test, y_test = small
    out = tmp_path / "plots" / "nested"
    written = plots.write_evaluation_plots(trained_model, X_test, y_test, out)
    assert sorted(os.path.basename(p) for p in written) == sorted(NAMES)
    assert sorted(os.listdir(out)) == sorted(NAMES)    # nothing else (no temp files)
    for name in NAMES:
        assert_png(out / name, min_side=100)


def test_no_history_no_training_curves(tmp_path, small):
    _, _, X_test, y_test = small
    written = plots.write_evaluation_plots(fm.MLP(hidden=(8,), seed=0), X_test, y_test, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["confusion_matrix.png", "worst_mistakes.png"]
    assert len(written) == 2
    with pytest.raises(InputError, match="history"):
        plots.plot_training_curves({}, tmp_path / "curves.png")


def test_edge_cases(tmp_path):
    # no mistakes at all, float images, one epoch without validation
    X = np.random.default_rng(0).random((5, 784))
    probs = np.eye(10)[[3, 1, 4, 1, 5]]
    plots.plot_worst_mistakes(X, [3, 1, 4, 1, 5], probs, tmp_path / "none.png")
    assert_png(tmp_path / "none.png", min_side=50)
    plots.plot_worst_mistakes(X, [3, 1, 4, 1, 6], probs, tmp_path / "one.png")
    assert_png(tmp_path / "one.png", min_side=50)
    plots.plot_training_curves({"loss": [0.5], "accuracy": [0.9]}, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")


@pytest.mark.slow  # matplotlib draws every figure
def test_cli_evaluate_plots(tmp_path, small, trained_model, monkeypatch, capsys):
    if not os.environ.get("FASTMNIST_DATA"):
        import fastmnist.data
        monkeypatch.setattr(fastmnist.data, "load_mnist", lambda data_dir=None, **kw: small)
    trained_model.save(tmp_path / "m.npz")
    out = tmp_path / "plots"
    assert main(["evaluate", str(tmp_path / "m.npz"), "--backend", "numpy",
                 "--plots", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "test accuracy" in stdout
    for name in NAMES:
        assert str(out / name) in stdout
        assert_png(out / name, min_side=100)
