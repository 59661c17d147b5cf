"""fastmnist train: train on MNIST with a recipe, overridable option by option."""

import argparse
import os
import time

from ..._notice import slow_notice


def _hidden(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("hidden widths must be positive") from None
    return sizes


def _batch(text):
    if text in ("full", "none", "None"):
        return "full"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("batch size must be >= 1") from None
    return value


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}") from None
        return value
    return parse


def _affine(text):
    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        return tuple(float(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DEGREES,SCALE,SHEAR such as 10,0.1,10, "
                                         f"got {text!r}") from None


def _pixels(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") \
            from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0") from None
    return value


#: --compile's choices; $FASTMNIST_COMPILE sets the default
COMPILE_CHOICES = ("auto", "wait", "background")


def add_parser(sub):
    from ...optim import OPTIMIZERS, SCHEDULES
    from ...recipes import RECIPES
    p = sub.add_parser("train", help="train an MLP on MNIST (options override the recipe)",
                       description="Train on MNIST. The recipe sets every option; the options "
                                   "given override it.")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="default")
    p.add_argument("--hidden", type=_hidden, help="hidden widths, e.g. 128 or 256,128")
    p.add_argument("--epochs", type=_positive(int))
    p.add_argument("--batch-size", type=_batch, help="rows per step, or 'full'")
    p.add_argument("--lr", type=_positive(float))
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS))
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float, metavar="EPS",
                   help="train against (1 - EPS) onehot + EPS / 10 (0: none)")
    p.add_argument("--dropout", type=float, metavar="RATE",
                   help="inverted dropout of the hidden layers' outputs (0: none)")
    p.add_argument("--input-dropout", type=float, metavar="RATE",
                   help="inverted dropout of the input pixels (0: none)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="average the weights over the steps with this decay (e.g. 0.999); "
                        "the model ends with the average (0: none)")
    p.add_argument("--max-norm", type=float, metavar="C",
                   help="after every update, scale each unit's incoming weights down to norm "
                        "C where longer (0: none)")
    p.add_argument("--shift", type=_pixels, metavar="PIXELS",
                   help="augmentation: move each training image by a random shift of up to "
                        "PIXELS in each direction, drawn anew every step (0: none)")
    p.add_argument("--affine", type=_affine, metavar="DEGREES,SCALE,SHEAR",
                   help="augmentation: also warp each training image by a random rotation of "
                        "up to DEGREES, scale in [1 - SCALE, 1 + SCALE] and shear of up to "
                        "SHEAR degrees, drawn anew every step (e.g. 10,0.1,10)")
    p.add_argument("--init", choices=("he", "glorot", "uniform"))
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--threads", type=_positive(int), help="Numba threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder with the IDX files or mnist.npz")
    p.add_argument("--out", help="save the trained model (and a checkpoint on Ctrl-C) here")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue an interrupted run from its checkpoint file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compile", choices=COMPILE_CHOICES,
                   default=os.environ.get("FASTMNIST_COMPILE", "auto"),
                   help="when the Numba kernels are not cached yet (a first run): 'wait' "
                        "compiles them first (30-90 s); 'background' trains with NumPy "
                        "while a subprocess compiles them, then switches; 'auto' is "
                        "'background' unless they are cached (default: $FASTMNIST_COMPILE, "
                        "else auto)")
    p.set_defaults(run=run)
    return p


def _build(args):
    """(model, fit_kwargs) from the recipe and the options that override it."""
    from ... import recipes
    from ...model import MLP
    model, kw = recipes.get(args.recipe, seed=args.seed, backend=args.backend)
    if args.hidden is not None or args.dtype or args.init:
        model = MLP(hidden=model.hidden if args.hidden is None else args.hidden,
                    dtype=args.dtype or model.dtype.name, init=args.init or model.init,
                    seed=args.seed)
    for opt, key in (("epochs", "epochs"), ("lr", "lr"), ("optimizer", "optimizer"),
                     ("schedule", "schedule"), ("weight_decay", "weight_decay"),
                     ("threads", "threads"), ("shift", "shift"), ("affine", "affine"),
                     ("label_smoothing", "label_smoothing"), ("max_norm", "max_norm"),
                     ("dropout", "dropout"), ("input_dropout", "input_dropout"),
                     ("ema", "ema")):
        if getattr(args, opt) is not None:
            kw[key] = getattr(args, opt)
    if args.batch_size is not None:
        kw["batch_size"] = None if args.batch_size == "full" else args.batch_size
    return model, kw


#: options that define the run; a resumed run takes them from its checkpoint
_RUN_OPTIONS = ("hidden", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                "init", "dtype", "shift", "affine", "label_smoothing", "max_norm", "dropout",
                "input_dropout", "ema")


def _resume(args):
    from ...errors import InputError
    from ...model import MLP
    from ...train import Checkpoint
    given = [o for o in _RUN_OPTIONS if getattr(args, o) is not None]
    if given:
        raise InputError("--resume continues the run saved in the checkpoint; these options "
                         "cannot change it: " + ", ".join("--" + o.replace("_", "-")
                                                          for o in given))
    model, extra = MLP.load(args.resume, return_extra=True)
    ckpt = Checkpoint.from_arrays(extra, model.history, len(model.params))
    kw = dict(model.config)
    if args.threads is not None:  # else the interrupted run's count: bit-identical results
        kw["threads"] = args.threads
    kw["checkpoint"] = ckpt
    return model, kw


def _check_writable(path):
    """Raise InputError unless a file can be written at `path` (so no training is lost)."""
    import os
    import tempfile

    from ...errors import InputError
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--out {path}: is a folder; give a file name, e.g. {path}/model.npz")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(f"--out {path}: cannot write in {folder} "
                         f"({e.strerror or e})") from None


#: said on stderr when the warm-up outlasts a cache load (1.5 s): the kernels are compiling
COMPILING = ("kernels: compiling for this CPU, once (30-90 s on 2 cores; later runs load "
             "them from Numba's cache in about 0.5 s)")


def _warm_up(model, kw, X, y):
    """Compile the Numba kernels this run uses (or load them from Numba's cache) by one
    epoch of a copy of the model on a few rows, so that the epoch times and the training time
    printed afterwards do not include compilation (about 12 s on a first run)."""
    import copy

    from ...errors import DivergedError
    twin = copy.deepcopy(model)
    n = min(len(X), 2 * (kw.get("batch_size") or 64))
    fit_kw = {k: v for k, v in kw.items() if k not in ("checkpoint", "epochs", "early_stopping")}
    try:
        # validation data too: the evaluation after each epoch has kernels of its own
        twin.fit(X[:n], y[:n], epochs=1, progress=False, validation_data=(X[:n], y[:n]),
                 **fit_kw)
    except DivergedError:  # compiled all the same
        pass
    from ... import warmup
    warmup.mark_cached(_spec(model, X))


#: said when a first run trains with NumPy while the kernels compile (fit's compile="background")
BACKGROUND = ("kernels: not in Numba's cache yet; compiling them in the background, once "
              "(30-90 s), and training with NumPy until they are ready")


def _spec(model, X):
    from ... import warmup
    return warmup.spec(model.dtype, X.dtype, model.n_features)


def _compile_mode(args, model, kw, X):
    """fit's `compile` for this run: --compile, with 'auto' resolved by the cache's state."""
    from ... import warmup
    if kw.get("backend", "numba") != "numba" or args.compile == "wait":
        return "wait"
    if args.compile == "auto" and warmup.is_cached(_spec(model, X)):
        return "wait"
    return "background"


def _say_background(model, X):
    from ... import warmup
    if model.steps_on_numpy:
        print(f"kernels: {model.steps_on_numpy} steps ran on NumPy while they compiled")
    if not warmup.is_cached(_spec(model, X)):
        print("kernels: still compiling in the background; later runs will use them "
              "(`fastmnist compile` waits for them)")


def run(args):
    from tqdm import tqdm

    from ...data import load_mnist

    # everything that can fail fast does, before the data is loaded and the training runs
    if args.compile not in COMPILE_CHOICES:  # a bad $FASTMNIST_COMPILE
        from ...errors import InputError
        raise InputError(f"FASTMNIST_COMPILE must be one of {', '.join(COMPILE_CHOICES)}, "
                         f"got {args.compile!r}")
    model, kw = _resume(args) if args.resume else _build(args)
    if args.out:
        _check_writable(args.out)
    t0 = time.perf_counter()
    X_train, y_train, X_test, y_test = load_mnist(args.data_dir, verbose=True)
    t_data = time.perf_counter() - t0
    epochs = kw["epochs"]
    every = max(1, epochs // 20)
    print(f"{model!r}  recipe={args.recipe if not args.resume else 'resumed'}  "
          + "  ".join(f"{k}={v}" for k, v in kw.items() if k != "checkpoint"))
    print(f"data: {len(X_train)} train / {len(X_test)} test images, loaded in {t_data:.2f} s")

    def on_epoch(epoch, h):
        if (epoch + 1) % every and epoch + 1 != epochs:
            return
        line = (f"epoch {epoch + 1:>4}/{epochs}  loss {h['loss'][-1]:.4f}  "
                f"acc {h['accuracy'][-1]:.4f}")
        if h.get("val_accuracy"):
            line += f"  test_acc {h['val_accuracy'][-1]:.4f}"
        line += f"  {h['epoch_seconds'][-1]:.3f} s"
        tqdm.write(line)

    compile_mode = _compile_mode(args, model, kw, X_train)
    if compile_mode == "background":
        print(BACKGROUND)
    elif kw.get("backend", "numba") == "numba":
        t0 = time.perf_counter()
        with slow_notice(COMPILING, after=1.5) as notice:
            _warm_up(model, kw, X_train, y_train)
        how = "compiled" if notice["said"] else "loaded from the cache"
        print(f"kernels: {how} in {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    try:
        model.fit(X_train, y_train, validation_data=(X_test, y_test),
                  progress=False if args.no_progress else None, on_epoch=on_epoch,
                  compile=compile_mode, **kw)
    except KeyboardInterrupt:
        if args.out and model.checkpoint is not None:
            model.save(args.out, extra=model.checkpoint.to_arrays())
            print(f"interrupted: checkpoint saved to {args.out}; continue with "
                  f"`fastmnist train --resume {args.out} --out {args.out}`")
        raise
    wall = time.perf_counter() - t0
    h = model.history
    train_s = sum(h["epoch_seconds"])
    backend = kw.get("backend", "numba")
    if compile_mode == "background":
        from ... import warmup
        _say_background(model, X_train)
        if not warmup.is_cached(_spec(model, X_train)):
            backend = "numpy"  # not ready: scoring would compile here
    acc = model.score(X_test, y_test, backend=backend)
    print(f"test accuracy {acc:.4f}  training {train_s:.2f} s  (wall {wall:.2f} s with "
          f"evaluation)")
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    return 0
