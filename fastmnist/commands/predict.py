"""fastmnist predict: classify digit images (PNG, JPEG, ...) with a saved model."""

import argparse


def _top(text):
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return k


def add_parser(sub):
    p = sub.add_parser(
        "predict", help="classify digit images with a saved model",
        description="Classify images of single digits. Each is converted to grayscale, inverted "
                    "if it is dark on light, and framed like MNIST (28x28, digit in a 20x20 box "
                    "centered by mass). Needs Pillow (the images extra).")
    p.add_argument("model", help="model file written by fastmnist train --out")
    p.add_argument("images", nargs="+", help="image files, one digit each")
    p.add_argument("--top", type=_top, default=1, metavar="K",
                   help="show the K most likely labels (default 1)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert gray levels: auto-detect dark-on-light (default), always, never")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numpy")
    p.set_defaults(run=run)
    return p


def format_prediction(path, probs, top=1):
    """One line ``path: label (probability 0.97)``, then ``, label (p)`` for the next top-1."""
    order = sorted(range(len(probs)), key=lambda c: -probs[c])[:top]
    first, rest = order[0], order[1:]
    line = f"{path}: {first} (probability {probs[first]:.2f})"
    if rest:
        line += "; then " + ", ".join(f"{c} ({probs[c]:.2f})" for c in rest)
    return line


def run(args):
    from ..errors import InputError
    from ..images import load_images
    from ..model import MLP

    model = MLP.load(args.model)
    if model.n_features != 28 * 28:
        raise InputError(f"{args.model}: the model takes {model.n_features} features, "
                         f"not 28x28 = 784 pixels; it cannot classify images")
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    X = load_images(args.images, invert=invert)
    probs = model.predict_proba(X, backend=args.backend)
    top = min(args.top, model.n_classes)
    for path, p in zip(args.images, probs):
        print(format_prediction(path, [float(v) for v in p], top))
    return 0
