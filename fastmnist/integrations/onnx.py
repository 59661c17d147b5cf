"""Export an :class:`~fastmnist.model.MLP` to ONNX (the ``onnx`` extra).

The graph is the model's forward pass, one node per operation::

    input (N, n_features) -> [Gemm -> Relu] per hidden layer -> Gemm -> Softmax -> probabilities

(Tanh, Sigmoid or Identity in place of Relu for a model of another ``activation``).

The input is float, already scaled to [0, 1]: divide uint8 pixels by 255 first, exactly as
:meth:`MLP.predict_proba` does for uint8 input. The batch dimension ``N`` is dynamic.

Precision: by default the graph is float32 whatever the model's dtype, because every ONNX runtime
(mobile, web, accelerators) implements float32 Gemm and only some implement float64; a float64
model's weights are rounded to float32, which moves its probabilities by about 1e-7.
``dtype=None`` exports the model's own dtype instead (float64 weights and a float64 input).
"""

import numpy as np

from .._atomic import atomic_write
from .._extras import missing
from ..errors import InputError

__all__ = ["export", "to_model_proto", "DEFAULT_OPSET", "DEFAULT_IR_VERSION", "INPUT_NAME",
           "OUTPUT_NAME"]

#: ONNX operator set and IR version written by default: opset 17 / IR 8 (ONNX 1.12) are read by
#: onnxruntime >= 1.13, the oldest the ``onnx`` extra allows being 1.17.
DEFAULT_OPSET = 17
DEFAULT_IR_VERSION = 8

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


#: hidden activation -> ONNX operator
_ONNX_OPS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid", "identity": "Identity"}

def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise missing("ONNX export", "the onnx package", "onnx") from None
    return onnx


def to_model_proto(model, opset=DEFAULT_OPSET, ir_version=DEFAULT_IR_VERSION, dtype="float32"):
    """Build the ONNX graph of `model` in memory.

    Parameters
    ----------
    model : fastmnist.MLP
    opset : int
        ONNX default-domain operator set version (13 or later: Softmax over the last axis).
    ir_version : int
        ONNX IR version stamped on the model (7 or later).
    dtype : {"float32", "float64", None}
        Element type of the weights, input and output; None keeps the model's dtype.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker.check_model``.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    dtype = model.dtype if dtype is None else np.dtype(str(dtype))
    if dtype.name not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32', 'float64' or None, got {dtype.name!r}")
    if int(opset) < 13:
        raise InputError(f"opset must be >= 13 (Softmax over the last axis), got {opset}")
    if int(ir_version) < 7:
        raise InputError(f"ir_version must be >= 7, got {ir_version}")
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE

    nodes, inits = [], []
    x = INPUT_NAME
    n_layers = len(model.params)
    for i, (W, b) in enumerate(model.params):
        # Gemm computes x @ W + b with W (d_in, d_out) as stored: no transpose needed
        inits.append(numpy_helper.from_array(np.ascontiguousarray(W, dtype=dtype), f"W{i}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b, dtype=dtype), f"b{i}"))
        z = "logits" if i == n_layers - 1 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [z], name=f"gemm{i}"))
        if i < n_layers - 1:
            x = f"a{i}"
            op = _ONNX_OPS[getattr(model, "activation", "relu")]
            nodes.append(helper.make_node(op, [z], [x], name=f"{op.lower()}{i}"))
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1, name="softmax"))

    graph = helper.make_graph(
        nodes, "fastmnist_mlp",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", model.n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["N", model.n_classes])],
        initializer=inits)
    graph.doc_string = (f"{model!r}; input: pixels scaled to [0, 1] (uint8 / 255), "
                        f"output: class probabilities")
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="fastmnist")
    proto.ir_version = int(ir_version)
    from .. import __version__
    proto.producer_version = __version__
    proto.model_version = 1
    helper.set_model_props(proto, {"architecture": "-".join(map(str, model.sizes)),
                                   "input_scaling": "pixels / 255"})
    onnx.checker.check_model(proto)
    return proto


def export(model, path, opset=DEFAULT_OPSET, ir_version=DEFAULT_IR_VERSION, dtype="float32"):
    """Write `model` to `path` as an ONNX file, atomically.

    Parameters
    ----------
    model : fastmnist.MLP
    path : str or os.PathLike
        Destination ``.onnx`` file.
    opset : int, default 17
        ONNX operator set version.
    ir_version : int, default 8
        ONNX IR version.
    dtype : {"float32", "float64", None}, default "float32"
        Element type of the graph; None keeps the model's dtype (see the module notes).

    Returns
    -------
    onnx.ModelProto
        The model written, already checked.

    Notes
    -----
    Graph input ``"input"``: (N, n_features) float, pixels scaled to [0, 1] (uint8 / 255).
    Graph output ``"probabilities"``: (N, n_classes), rows summing to 1.

    Examples
    --------
    >>> export(model, "mnist.onnx")                                  # doctest: +SKIP
    >>> import onnxruntime as ort                                    # doctest: +SKIP
    >>> sess = ort.InferenceSession("mnist.onnx")                    # doctest: +SKIP
    >>> sess.run(None, {"input": (X_test / 255).astype("float32")})[0]  # doctest: +SKIP
    """
    proto = to_model_proto(model, opset=opset, ir_version=ir_version, dtype=dtype)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return proto
