"""fastmnist predict: classify digit images (PNG, JPEG, ...) with a saved model."""

import argparse
import os
import sys


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
                    "if it is dark on light, freed of uneven lighting (photos) and framed like "
                    "MNIST (28x28, digit in a 20x20 box centered by mass). An image that does "
                    "not look like a digit, or that the model is unsure of, gets a warning on "
                    "stderr. Needs Pillow (the images extra).")
    p.add_argument("model", help="model file written by fastmnist train --out")
    p.add_argument("images", nargs="+", help="image files, one digit each")
    p.add_argument("--top", type=_top, default=1, metavar="K",
                   help="show the K most likely labels (default 1)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert gray levels: auto-detect dark-on-light (default), always, never")
    p.add_argument("--save-input", metavar="DIR",
                   help="write the 28x28 image the model sees for each input to "
                        "DIR/NAME.28x28.png (DIR is created if needed)")
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


def input_names(paths):
    """``NAME.28x28.png`` for each path (``photo.jpg`` -> ``photo.28x28.png``); a name already
    taken gets ``-2``, ``-3``, ... (``a/7.png`` and ``b/7.png``: ``7.28x28.png``,
    ``7-2.28x28.png``)."""
    names, taken = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "image"
        name, n = f"{stem}.28x28.png", 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}.28x28.png"
        taken.add(name)
        names.append(name)
    return names


def _make_folder(folder):
    """Create `folder` (and its parents) unless it exists; InputError if that fails."""
    from ...errors import InputError
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(f"--save-input {folder}: cannot create the folder "
                         f"({e.strerror or e})") from None


def run(args):
    from ...errors import InputError
    from ...integrations.images import digit_warning, load_images, save_png
    from ...model import MLP

    model = MLP.load(args.model)
    if model.n_features != 28 * 28:
        raise InputError(f"{args.model}: the model takes {model.n_features} features, "
                         f"not 28x28 = 784 pixels; it cannot classify images")
    if args.save_input:   # before reading the images, not after
        _make_folder(args.save_input)
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    X = load_images(args.images, invert=invert)                          # (n, 784) uint8
    probs = model.predict_proba(X, backend=args.backend)                 # (n, n_classes)
    top = min(args.top, model.n_classes)
    names = input_names(args.images) if args.save_input else [None] * len(args.images)
    for path, x, p, name in zip(args.images, X, probs, names):
        print(format_prediction(path, [float(v) for v in p], top))
        saved = name and os.path.join(args.save_input, name)
        if saved:
            save_png(x, saved)
            print(f"wrote {saved}")
        warning = digit_warning(x, p)
        if warning:
            print(f"fastmnist predict: warning: {path}: {warning} - see "
                  f"{saved or '--save-input'}", file=sys.stderr)
    return 0
