"""Image loading (fastmnist.images) and ``fastmnist predict`` on PNG/JPEG files."""

import os
import re

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

import fastmnist as fm  # noqa: E402
from fastmnist.cli import main  # noqa: E402
from fastmnist.errors import InputError  # noqa: E402
from fastmnist.images import is_dark_on_light, load_image, load_images, to_mnist  # noqa: E402

LINE = re.compile(r"^(?P<path>.+): (?P<label>\d) \(probability (?P<p>[01]\.\d\d)\)")


def synthetic_digits(n, seed):
    """n font-rendered digits (jittered size, stroke, position, rotation) as MNIST uint8 rows."""
    from PIL import ImageDraw, ImageFont, features
    if not features.check("freetype2"):
        pytest.skip("synthetic digits need Pillow with FreeType")
    rng = np.random.default_rng(seed)
    X, y = np.empty((n, 784), np.uint8), rng.integers(0, 10, n).astype(np.uint8)
    for i in range(n):
        img = Image.new("L", (48, 48), 0)
        font = ImageFont.load_default(size=int(rng.integers(22, 38)))
        ImageDraw.Draw(img).text((24 + rng.integers(-4, 5), 24 + rng.integers(-4, 5)),
                                 str(y[i]), fill=255, font=font, anchor="mm",
                                 stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
        img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
        X[i] = to_mnist(img, invert=False)
    return X, y


@pytest.fixture(scope="module")
def digits():
    """(model, images (k, 784) uint8 it classifies confidently right, their labels)."""
    if os.environ.get("FASTMNIST_DATA"):
        X_train, y_train, X_test, y_test = fm.load_mnist()
        X_train, y_train, epochs = X_train[:10000], y_train[:10000], 1
    else:
        X_train, y_train = synthetic_digits(3000, seed=0)
        X_test, y_test = synthetic_digits(300, seed=1)
        epochs = 5
    model = fm.MLP(hidden=(64,), seed=0)
    model.fit(X_train, y_train, epochs=epochs, batch_size=64, lr=0.1, backend="numpy",
              progress=False)
    probs = model.predict_proba(X_test)
    pick = []
    for c in range(10):   # one image per class, one the model gets right with confidence
        good = np.flatnonzero((y_test == c) & (probs[:, c] > 0.9))
        if good.size:
            pick.append(good[0])
    assert len(pick) >= 8, "the quickly trained model should be confident on most classes"
    return model, X_test[pick], y_test[pick].astype(np.int64)


def write_variants(tmp_path, X, y):
    """PNG/JPEG files of each image: plain 28x28, dark-on-light, 56x56, RGBA on transparent."""
    paths, labels = [], []
    for i, (x, label) in enumerate(zip(X, y)):
        a = x.reshape(28, 28)
        variants = {
            f"d{i}_plain.png": Image.fromarray(a),
            f"d{i}_inverted.png": Image.fromarray(255 - a),
            f"d{i}_big.png": Image.fromarray(a).resize((56, 56), Image.Resampling.BILINEAR),
            f"d{i}_big_inverted_rgb.jpg": Image.fromarray(255 - a).convert("RGB")
                                               .resize((70, 56), Image.Resampling.BICUBIC),
        }
        rgba = np.zeros((36, 36, 4), np.uint8)       # black ink, alpha = ink, on transparent
        rgba[4:32, 4:32, 3] = a
        variants[f"d{i}_transparent.png"] = Image.fromarray(rgba)
        for name, img in variants.items():
            img.save(tmp_path / name, **({"quality": 95} if name.endswith(".jpg") else {}))
            paths.append(str(tmp_path / name))
            labels.append(int(label))
    return paths, labels


def test_28x28_png_round_trips_exactly(tmp_path):
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255
    a[6:22, 11] = 120
    Image.fromarray(a).save(tmp_path / "one.png")
    Image.fromarray(255 - a).save(tmp_path / "one_dark_on_light.png")
    np.testing.assert_array_equal(load_image(tmp_path / "one.png"), a.ravel())
    np.testing.assert_array_equal(load_image(tmp_path / "one_dark_on_light.png"), a.ravel())
    assert load_image(tmp_path / "one.png").dtype == np.uint8


def test_larger_image_is_framed_like_mnist(tmp_path, digits):
    _, X, _ = digits
    for x in X:
        big = Image.fromarray(x.reshape(28, 28)).resize((56, 56), Image.Resampling.BILINEAR)
        v = to_mnist(big).reshape(28, 28).astype(np.float64)
        assert v.shape == (28, 28) and v.max() == 255
        rows = np.flatnonzero(v.max(axis=1) > 50)
        cols = np.flatnonzero(v.max(axis=0) > 50)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22   # fits the 20x20 box
        cy = (v.sum(axis=1) * np.arange(28)).sum() / v.sum()
        cx = (v.sum(axis=0) * np.arange(28)).sum() / v.sum()
        assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0               # centered by mass
        assert np.abs(v - x.reshape(28, 28)).mean() < 25


def test_polarity_detection():
    light = np.full((30, 30), 230.0)
    light[10:20, 14:16] = 10
    assert is_dark_on_light(light)
    assert not is_dark_on_light(255 - light)
    np.testing.assert_array_equal(to_mnist(light), to_mnist(255 - light))
    np.testing.assert_array_equal(to_mnist(light, invert=False),
                                  np.zeros(784, np.uint8))   # light "ink" on light paper


def test_blank_and_bad_arguments():
    assert not to_mnist(np.zeros((40, 40))).any()
    with pytest.raises(InputError, match="invert"):
        to_mnist(np.zeros((28, 28)), invert="sometimes")
    with pytest.raises(InputError, match="2-D"):
        to_mnist(np.zeros((2, 28, 28)))
    with pytest.raises(InputError, match="no image"):
        load_images([])


def test_model_predicts_every_variant(tmp_path, digits):
    model, X, y = digits
    paths, labels = write_variants(tmp_path, X, y)
    pred = model.predict(load_images(paths))
    wrong = [(p, int(q)) for p, q, t in zip(paths, pred, labels) if q != t]
    assert not wrong, f"mispredicted {wrong}"


def test_cli_predict(tmp_path, digits, capsys):
    model, X, y = digits
    model.save(tmp_path / "m.npz")
    paths, labels = write_variants(tmp_path, X[:3], y[:3])
    assert main(["predict", str(tmp_path / "m.npz"), *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(paths)
    for line, path, label in zip(lines, paths, labels):
        m = LINE.match(line)
        assert m, line
        assert m["path"] == path and int(m["label"]) == label and float(m["p"]) > 0.5


def test_cli_predict_top_k(tmp_path, digits, capsys):
    model, X, y = digits
    model.save(tmp_path / "m.npz")
    Image.fromarray(X[0].reshape(28, 28)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "a.png"), "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert LINE.match(line)["label"] == str(y[0])
    others = re.findall(r"(\d) \((\d\.\d\d)\)", line.split("; then ")[1])
    assert len(others) == 2 and len({c for c, _ in others} | {str(y[0])}) == 3


@pytest.mark.parametrize("kind", ["missing", "not_an_image", "folder"])
def test_cli_predict_bad_file(tmp_path, kind, capsys):
    fm.MLP(hidden=(4,), seed=0).save(tmp_path / "m.npz")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    bad = tmp_path / "bad.png"
    if kind == "not_an_image":
        bad.write_text("this is not a PNG\n")
    elif kind == "folder":
        bad.mkdir()
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "ok.png"), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""                              # nothing printed before the failure
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("fastmnist predict: error:") and str(bad) in err


def test_cli_predict_missing_model(tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    assert main(["predict", str(tmp_path / "nope.npz"), str(tmp_path / "ok.png")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
