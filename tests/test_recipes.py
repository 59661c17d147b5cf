"""The recipes on real MNIST: the accuracies the README promises (needs $FASTMNIST_DATA).

These train for real (about a minute in all), so they
are marked slow; CI runs them.
"""

import re

import numpy as np
import pytest

import fastmnist as fm
from fastmnist.cli import main

pytestmark = pytest.mark.slow


def _cli_accuracy(capsys, *argv):
    """Run ``fastmnist train`` and return the final test accuracy it printed."""
    assert main(["train", "--no-progress", *argv]) == 0
    out = capsys.readouterr().out
    found = re.findall(r"^test accuracy (0\.\d+)", out, flags=re.M)
    assert len(found) == 1, out
    return float(found[0])


def test_seed_recipe_cli_reproduces_the_notebook(mnist, capsys, tmp_path):
    acc = _cli_accuracy(capsys, "--recipe", "seed", "--out", str(tmp_path / "seed.npz"))
    assert acc >= 0.85
    model = fm.MLP.load(tmp_path / "seed.npz")
    assert model.sizes == [784, 10, 10] and model.dtype == np.float64
    assert len(model.history["loss"]) == 500
    # the saved model gives the printed accuracy through the public API
    assert model.score(mnist[2], mnist[3]) == pytest.approx(acc, abs=1e-4)


def test_seed_recipe_numpy_and_numba_agree(mnist):
    """The reference and the fast backend train the seed recipe to the same weights.

    60 of the 500 full-batch steps keep this affordable (the reference takes ~0.3 s a step);
    the full run on the reference is ``fastmnist train --recipe seed --backend numpy``.
    """
    models = {}
    for backend in ("numpy", "numba"):
        model, kw = fm.recipes.get("seed", backend=backend)
        model.fit(mnist[0], mnist[1], progress=False, **{**kw, "epochs": 60})
        models[backend] = model
    ref, fast = models["numpy"], models["numba"]
    for (W, b), (W0, b0) in zip(fast.params, ref.params):
        np.testing.assert_allclose(W, W0, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(b, b0, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(fast.history["loss"], ref.history["loss"], rtol=1e-9)
    assert fast.score(mnist[2], mnist[3]) == ref.score(mnist[2], mnist[3]) > 0.6


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
