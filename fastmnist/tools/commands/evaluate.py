"""fastmnist evaluate: score a saved model on the MNIST test set."""


def add_parser(sub):
    p = sub.add_parser("evaluate", help="test accuracy and loss of a saved model")
    p.add_argument("model", help="model file written by fastmnist train --out")
    p.add_argument("--data-dir", help="folder with the IDX files or mnist.npz")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--plots", metavar="DIR",
                   help="also write confusion_matrix.png, worst_mistakes.png and (if the model "
                        "has a training history) training_curves.png here; needs matplotlib")
    p.set_defaults(run=run)
    return p


def run(args):
    import numpy as np

    from ... import backends
    from ..._extras import require
    from ...data import load_mnist
    from ...errors import InputError
    from ...model import MLP
    from ...train import evaluate

    if args.plots:  # before the evaluation, not after it
        require("matplotlib", "--plots", "matplotlib", "plot")
    model = MLP.load(args.model)
    if model.n_features != 28 * 28 or model.n_classes < 10:
        raise InputError(f"{args.model}: {model!r} does not take MNIST (784 pixels in, "
                         "10 classes out)")
    _, _, X_test, y_test = load_mnist(args.data_dir, verbose=True)
    loss, acc = evaluate(backends.get(args.backend), model.params,
                          X_test, y_test.astype(np.int64))
    print(f"{args.model}: {model!r}")
    print(f"test accuracy {acc:.4f}  test loss {loss:.4f}  ({len(y_test)} images)")
    if args.plots:
        from ...integrations.evaluation_plots import write_evaluation_plots
        for path in write_evaluation_plots(model, X_test, y_test, args.plots,
                                           backend=args.backend):
            print(f"wrote {path}")
    return 0
