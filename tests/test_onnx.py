"""ONNX export: the graph checks, and onnxruntime reproduces MLP.predict_proba."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastmnist as fm  # noqa: E402
from fastmnist.cli import main  # noqa: E402
from fastmnist.errors import InputError  # noqa: E402
from fastmnist.integrations.onnx import DEFAULT_IR_VERSION, DEFAULT_OPSET, export  # noqa: E402

ATOL = 1e-5          # onnxruntime vs predict_proba, float32 graph
ATOL_F64 = 1e-12     # float64 graph of a float64 model


@pytest.fixture(scope="module")
def inputs():
    """(n, 784) float32 pixels in [0, 1]: MNIST test images / 255 or random sparse images."""
    if os.environ.get("FASTMNIST_DATA"):
        X = fm.load_mnist()[2][:500]
    else:
        rng = np.random.default_rng(0)
        X = (rng.random((500, 784)) < 0.2) * rng.integers(0, 256, (500, 784))
    return X.astype(np.uint8)


def trained(hidden, dtype, X):
    """A model trained briefly (on made-up labels): weights away from their initial values."""
    model = fm.MLP(hidden=hidden, dtype=dtype, seed=0)
    y = (X.astype(np.int64).sum(axis=1) // 97) % 10
    model.fit(X, y, epochs=2, batch_size=50, lr=0.1, backend="numpy", progress=False)
    return model


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("hidden", [(), (32,), (32, 16)], ids=["0hidden", "1hidden", "2hidden"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnxruntime_matches_predict_proba(tmp_path, inputs, hidden, dtype):
    model = trained(hidden, dtype, inputs)
    path = tmp_path / "m.onnx"
    model.to_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert proto.ir_version == DEFAULT_IR_VERSION
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", DEFAULT_OPSET)]
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Gemm", "Relu"] * len(hidden) + ["Gemm", "Softmax"]
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "probabilities")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value and dims[1].dim_value == 784

    sess = session(path)
    x = (inputs / 255).astype(np.float32)
    want = model.predict_proba(inputs)
    for rows in (slice(0, 1), slice(0, 37), slice(None)):     # dynamic batch size
        (got,) = sess.run(None, {"input": x[rows]})
        assert got.dtype == np.float32 and got.shape == want[rows].shape
        np.testing.assert_allclose(got, want[rows], rtol=0, atol=ATOL)
    np.testing.assert_array_equal(np.argmax(got, axis=1), model.predict(inputs))


@pytest.mark.parametrize("hidden", [(), (32, 16)])
def test_float64_graph_keeps_float64(tmp_path, inputs, hidden):
    model = trained(hidden, "float64", inputs)
    model.to_onnx(tmp_path / "m.onnx", dtype=None)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in proto.graph.initializer)
    (got,) = session(tmp_path / "m.onnx").run(None, {"input": inputs / 255})
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, model.predict_proba(inputs), rtol=0, atol=ATOL_F64)


def test_other_opset_and_ir_version(tmp_path, inputs):
    model = trained((8,), "float32", inputs)
    export(model, tmp_path / "m.onnx", opset=13, ir_version=7)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.ir_version == 7 and proto.opset_import[0].version == 13
    (got,) = session(tmp_path / "m.onnx").run(None, {"input": (inputs / 255).astype(np.float32)})
    np.testing.assert_allclose(got, model.predict_proba(inputs), rtol=0, atol=ATOL)


def test_bad_arguments(tmp_path):
    model = fm.MLP(hidden=(4,), seed=0)
    with pytest.raises(InputError, match="opset"):
        model.to_onnx(tmp_path / "m.onnx", opset=11)
    with pytest.raises(InputError, match="dtype"):
        model.to_onnx(tmp_path / "m.onnx", dtype="float16")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export(tmp_path, inputs, capsys):
    model = trained((16,), "float64", inputs)
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "m.onnx" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    (got,) = session(tmp_path / "m.onnx").run(None, {"input": (inputs / 255).astype(np.float32)})
    np.testing.assert_allclose(got, model.predict_proba(inputs), rtol=0, atol=ATOL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.onnx"]  # no temp files

    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m64.onnx"),
                 "--dtype", "model"]) == 0
    (got,) = session(tmp_path / "m64.onnx").run(None, {"input": inputs / 255})
    np.testing.assert_allclose(got, model.predict_proba(inputs), rtol=0, atol=ATOL_F64)


def test_cli_export_missing_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.npz"), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope.npz" in err
    assert not (tmp_path / "m.onnx").exists()
