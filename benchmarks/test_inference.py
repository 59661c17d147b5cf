"""Inference: ``MLP.predict_proba`` on the default recipe's network (784-128-10, float32)
against onnxruntime (the model's own ONNX export) and PyTorch (the same weights), on the
10,000 test images at once (group ``inference batch``) and on one image (group
``inference one image``).

fastmnist gets the uint8 images as users hold them; onnxruntime and PyTorch get float32 images
scaled once, outside the timing, as their users do. Every contender's probabilities are
checked against the NumPy reference before it is timed. onnxruntime and PyTorch are optional:
their benchmarks skip when they are not installed.
"""

import numpy as np
import pytest

import fastmnist as fm
from fastmnist.backends import numpy_ref as ref

CONTENDERS = ["fastmnist-numba", "fastmnist-numpy", "onnxruntime", "torch"]


@pytest.fixture(scope="module")
def model():
    model, _ = fm.recipes.get("default")
    return model


@pytest.fixture(scope="module")
def images(mnist):
    return mnist.X_test


def _contender(who, model, x, tmp_path_factory):
    """A callable returning (n, 10) probabilities for x (n, 784) uint8."""
    if who.startswith("fastmnist"):
        backend = who.partition("-")[2]
        return lambda: model.predict_proba(x, backend=backend)
    xf = (x / np.float32(255)).astype(np.float32)
    if who == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        path = tmp_path_factory.mktemp("onnx") / "model.onnx"
        model.to_onnx(str(path))
        session = ort.InferenceSession(str(path))
        return lambda: session.run(None, {"input": xf})[0]
    torch = pytest.importorskip("torch")
    (W1, b1), (W2, b2) = model.params
    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10), torch.nn.Softmax(dim=1))
    with torch.no_grad():
        for layer, W, b in ((net[0], W1, b1), (net[2], W2, b2)):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            layer.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(xf)

    def run():
        with torch.no_grad():
            return net(xt).numpy()
    return run


@pytest.mark.parametrize("rows", [10000, 1], ids=["batch", "one-image"])
@pytest.mark.parametrize("who", CONTENDERS)
def test_inference(benchmark, who, rows, model, images, tmp_path_factory):
    benchmark.group = "inference batch" if rows > 1 else "inference one image"
    x = np.ascontiguousarray(images[:rows])
    run = _contender(who, model, x, tmp_path_factory)
    np.testing.assert_allclose(run(), ref.forward(model.params, x), rtol=1e-4, atol=1e-6)
    benchmark(run)
