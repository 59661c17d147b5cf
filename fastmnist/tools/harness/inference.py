"""Inference contenders: ``MLP.predict_proba`` of a trained or fresh fastmnist model against
onnxruntime (the model's own ONNX export) and PyTorch (the same weights), as their users run
them.

fastmnist gets the uint8 images as its users hold them; onnxruntime and PyTorch get float32
images scaled once, outside the timing, as theirs do. :func:`contenders` checks every one's
probabilities against the NumPy reference before returning it, so nothing wrong is timed.
"""

import os
import tempfile

import numpy as np

from ...backends import numpy_ref
from .checks import RTOL_F32
from .peers import torch_mlp

#: the contenders, in the order they are reported
NAMES = ("fastmnist-numba", "fastmnist-numpy", "onnxruntime", "torch")


def _onnx(model, xf, folder):
    import onnxruntime as ort
    path = os.path.join(folder, "model.onnx")
    model.to_onnx(path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"input": xf})[0]


def _torch(model, xf):
    import torch
    net = torch.nn.Sequential(torch_mlp(model.params), torch.nn.Softmax(dim=1)).eval()
    xt = torch.from_numpy(xf)

    def run():
        with torch.no_grad():
            return net(xt).numpy()
    return run


def contender(name, model, x, folder=None):
    """A callable returning (n, C) probabilities for x (n, 784) uint8, checked against the
    NumPy reference. name: one of :data:`NAMES`. Raises ImportError when a peer is not
    installed. folder: where onnxruntime's model file goes (a temporary folder if None)."""
    if name.startswith("fastmnist-"):
        backend = name.partition("-")[2]
        run = lambda: model.predict_proba(x, backend=backend)  # noqa: E731
    else:
        xf = (x / np.float32(255)).astype(np.float32)
        if name == "onnxruntime":
            run = _onnx(model, xf, folder or tempfile.mkdtemp(prefix="fastmnist-onnx-"))
        elif name == "torch":
            run = _torch(model, xf)
        else:
            raise ValueError(f"unknown inference contender {name!r}; one of {NAMES}")
    np.testing.assert_allclose(run(), numpy_ref.forward(model.params, x), rtol=RTOL_F32,
                               atol=1e-6, err_msg=f"{name}'s probabilities")
    return run


def contenders(model, x, names=NAMES, folder=None):
    """name -> callable for each of `names` that can run here (peers not installed are
    left out), each checked first (:func:`contender`)."""
    out = {}
    for name in names:
        try:
            out[name] = contender(name, model, x, folder)
        except ImportError:
            continue
    return out


def repeated(fn, times):
    """A callable running fn `times` times (to time a call too short to time alone)."""
    def run():
        for _ in range(times):
            fn()
    return run
