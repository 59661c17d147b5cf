"""fastmnist export: write a saved model as ONNX (needs the onnx extra)."""


def add_parser(sub):
    from ...integrations.onnx import DEFAULT_IR_VERSION, DEFAULT_OPSET
    p = sub.add_parser(
        "export", help="export a saved model to ONNX",
        description="Export a model file to ONNX. The graph takes float input (N, 784) already "
                    "scaled to [0, 1] (uint8 pixels / 255) and outputs class probabilities.")
    p.add_argument("model", help="model file written by fastmnist train --out")
    p.add_argument("output", help="ONNX file to write, e.g. model.onnx")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX operator set (default {DEFAULT_OPSET})")
    p.add_argument("--ir-version", type=int, default=DEFAULT_IR_VERSION,
                   help=f"ONNX IR version (default {DEFAULT_IR_VERSION})")
    p.add_argument("--dtype", choices=("float32", "float64", "model"), default="float32",
                   help="element type of the graph; 'model' keeps the model's (default float32)")
    p.set_defaults(run=run)
    return p


def run(args):
    from ...integrations.onnx import export
    from ...model import MLP

    model = MLP.load(args.model)
    export(model, args.output, opset=args.opset, ir_version=args.ir_version,
           dtype=None if args.dtype == "model" else args.dtype)
    dtype = model.dtype.name if args.dtype == "model" else args.dtype
    print(f"{args.output}: {model!r} as ONNX (opset {args.opset}, IR {args.ir_version}, "
          f"{dtype}); input 'input' (N, {model.n_features}) pixels / 255, "
          f"output 'probabilities' (N, {model.n_classes})")
    return 0
