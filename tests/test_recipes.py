"""The recipes on real MNIST: the accuracies the README promises (needs $FASTMNIST_DATA).

These train for real (about a minute in all), so they
are marked slow; CI runs them.
"""

import os
import re
import sys

import background
import numpy as np
import pytest

import fastmnist as fm
from fastmnist.cli import main

pytestmark = pytest.mark.slow


def _accuracy(out):
    """The final test accuracy that ``fastmnist train`` printed in `out`."""
    found = re.findall(r"^test accuracy (0\.\d+)", out, flags=re.M)
    assert len(found) == 1, out
    return float(found[0])


def _cli_accuracy(capsys, *argv):
    """Run ``fastmnist train`` and return the final test accuracy it printed."""
    assert main(["train", "--no-progress", *argv]) == 0
    return _accuracy(capsys.readouterr().out)


@background.job(cost=30)
def seed_cli(folder):
    """``fastmnist train --recipe seed`` in its own process (500 full-batch steps, about
    30 s): (the process, the model file)."""
    if not os.environ.get("FASTMNIST_DATA"):  # the test skips; no download
        return None
    path = os.path.join(folder, "seed.npz")
    return background.run([sys.executable, "-m", "fastmnist", "train", "--no-progress",
                           "--recipe", "seed", "--out", path], timeout=600), path


@pytest.mark.background(seed_cli)
def test_seed_recipe_cli_reproduces_the_notebook(mnist):
    proc, path = seed_cli.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = _accuracy(proc.stdout)
    assert acc >= 0.85
    model = fm.MLP.load(path)
    assert model.sizes == [784, 10, 10] and model.dtype == np.float64
    assert len(model.history["loss"]) == 500
    # the saved model gives the printed accuracy through the public API
    assert model.score(mnist[2], mnist[3]) == pytest.approx(acc, abs=1e-4)


_SEED_BOTH = """
import sys
import numpy as np
import fastmnist as fm
X, y, Xt, yt = fm.load_mnist()
out = {}
for backend in ("numpy", "numba"):
    model, kw = fm.recipes.get("seed", backend=backend)
    model.fit(X, y, progress=False, **{**kw, "epochs": 60})
    for i, (W, b) in enumerate(model.params):
        out[f"{backend}_W{i}"], out[f"{backend}_b{i}"] = W, b
    out[f"{backend}_loss"] = np.asarray(model.history["loss"])
    out[f"{backend}_score"] = np.float64(model.score(Xt, yt))
np.savez(sys.argv[1], **out)
"""


@background.job(cost=30)
def seed_both(folder):
    """The seed recipe's first 60 full-batch steps on each backend, in its own process (the
    reference takes ~0.3 s a step): (the process, the npz of weights, losses and scores)."""
    if not os.environ.get("FASTMNIST_DATA"):  # the test skips; no download
        return None
    path = os.path.join(folder, "seed-both.npz")
    return background.run([sys.executable, "-c", _SEED_BOTH, path], timeout=600), path


@pytest.mark.background(seed_both)
def test_seed_recipe_numpy_and_numba_agree(mnist):
    """The reference and the fast backend train the seed recipe to the same weights.

    60 of the 500 full-batch steps keep this affordable; the full run on the reference is
    ``fastmnist train --recipe seed --backend numpy``.
    """
    proc, path = seed_both.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(path)
    for i in range(2):
        np.testing.assert_allclose(got[f"numba_W{i}"], got[f"numpy_W{i}"], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(got[f"numba_b{i}"], got[f"numpy_b{i}"], rtol=1e-7, atol=1e-10)
    assert len(got["numba_loss"]) == 60
    np.testing.assert_allclose(got["numba_loss"], got["numpy_loss"], rtol=1e-9)
    assert got["numba_score"] == got["numpy_score"] > 0.6


def test_default_recipe_cli_reaches_97(mnist, capsys, tmp_path):
    out = tmp_path / "default.npz"
    acc = _cli_accuracy(capsys, "--out", str(out))
    assert acc >= 0.97
    assert main(["evaluate", str(out)]) == 0
    assert f"{acc:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [0, 1])
def test_fast98_reaches_98(mnist, seed):
    model, kw = fm.recipes.get("fast98", seed=seed)
    model.fit(mnist[0], mnist[1], progress=False, **kw)
    assert model.score(mnist[2], mnist[3]) >= 0.98
    # an independent float64 forward pass agrees with the backend's predictions
    a = mnist[2].astype(np.float64) / 255.0
    for i, (W, b) in enumerate(model.params):
        a = a @ W.astype(np.float64) + b
        if i < len(model.params) - 1:
            a = np.maximum(a, 0.0)
    assert np.mean(a.argmax(axis=1) == mnist[3]) >= 0.98


def test_fast985_reaches_98_5(mnist):
    """The shifted-images recipe on seed 0 (its docstring lists seeds 0-2)."""
    model, kw = fm.recipes.get("fast985", seed=0)
    assert kw["shift"] == 1
    model.fit(mnist[0], mnist[1], progress=False, **kw)
    assert model.score(mnist[2], mnist[3]) >= 0.985
