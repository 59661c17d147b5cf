"""Inference: ``MLP.predict_proba`` on the default recipe's network (784-128-10, float32)
against onnxruntime (the model's own ONNX export) and PyTorch (the same weights), on the
10,000 test images at once (group ``inference batch``) and on one image (group
``inference one image``).

fastmnist gets the uint8 images as users hold them; onnxruntime and PyTorch get float32 images
scaled once, outside the timing, as their users do. Every contender's probabilities are
checked against the NumPy reference before it is timed. onnxruntime and PyTorch are optional:
their benchmarks skip when they are not installed. ``python benchmarks/inference.py`` times the
same contenders interleaved in one run, for ratios.
"""

import numpy as np
import pytest

import fastmnist as fm
from fastmnist.tools.harness import inference


@pytest.fixture(scope="module")
def model():
    model, _ = fm.recipes.get("default")
    return model


@pytest.fixture(scope="module")
def images(mnist):
    return mnist.X_test


@pytest.mark.parametrize("rows", [10000, 1], ids=["batch", "one-image"])
@pytest.mark.parametrize("who", inference.NAMES)
def test_inference(benchmark, who, rows, model, images, tmp_path_factory):
    """The contenders of :mod:`fastmnist.tools.harness.inference`, each checked against the
    NumPy reference before it is timed."""
    benchmark.group = "inference batch" if rows > 1 else "inference one image"
    if who == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    elif who == "torch":
        pytest.importorskip("torch")
    x = np.ascontiguousarray(images[:rows])
    benchmark(inference.contender(who, model, x, str(tmp_path_factory.mktemp("onnx"))))
