"""Evaluation plots as PNG files: ``fastmnist evaluate --plots`` (the ``plot`` extra, matplotlib).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module never
changes the backend of an interactive session, and every file is written atomically. The public
path is :mod:`fastmnist.plots`; :func:`figure` and :func:`save_png` also draw and write the
study's figures (:mod:`fastmnist.tools.study.figures`).
"""

import os

import numpy as np

from .._atomic import atomic_write
from .._extras import missing
from ..errors import InputError

__all__ = ["write_evaluation_plots", "plot_confusion_matrix", "plot_worst_mistakes",
           "plot_training_curves", "confusion_matrix", "figure", "save_png", "DPI"]

DPI = 120


def figure(width, height):
    """A matplotlib Figure on an Agg canvas (width, height in inches)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise missing("plots", "matplotlib", "plot") from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path):
    """Write fig as a PNG at path, atomically; returns the path."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return os.fspath(path)


def confusion_matrix(y_true, y_pred, n_classes=10):
    """Counts (n_classes, n_classes): row = true label, column = predicted label."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise InputError(f"y_true and y_pred must be 1-D of one length, got shapes "
                         f"{y_true.shape} and {y_pred.shape}")
    return np.bincount(y_true * n_classes + y_pred,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def plot_confusion_matrix(y_true, y_pred, path, n_classes=10, title="test set"):
    """Write the confusion matrix (counts per cell, accuracy in the title) to a PNG.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
        True and predicted labels.
    path : str or os.PathLike
        PNG file to write.
    n_classes : int
    title : str
        What was evaluated, shown in the title.

    Returns
    -------
    str
        `path`.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    n = int(cm.sum())
    acc = np.trace(cm) / max(n, 1)
    fig = figure(7.0, 6.0)
    from matplotlib.colors import PowerNorm
    ax = fig.add_subplot()
    # a square-root color scale: the diagonal (~1000) would otherwise wash out the mistakes
    im = ax.imshow(cm, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=max(int(cm.max()), 1)))
    threshold = 0.45 * max(int(cm.max()), 1)
    for t in range(n_classes):
        for p in range(n_classes):
            if cm[t, p]:
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=8,
                        color="white" if cm[t, p] > threshold else "black")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(f"Confusion matrix, {title}: accuracy {100 * acc:.2f}% "
                 f"({n - int(np.trace(cm))} of {n} wrong)")
    fig.colorbar(im, ax=ax, label="images (square-root scale)", shrink=0.85)
    return save_png(fig, path)


def plot_worst_mistakes(X, y_true, probs, path, n=24, side=28):
    """Write a grid of the most confident wrong predictions to a PNG.

    Parameters
    ----------
    X : ndarray, shape (n_samples, side * side)
        Images, uint8 (0..255) or float in [0, 1], white digit on black.
    y_true : array_like of int, shape (n_samples,)
    probs : ndarray, shape (n_samples, n_classes)
        Predicted class probabilities.
    path : str or os.PathLike
        PNG file to write.
    n : int
        Show at most this many mistakes, most confident first.
    side : int
        Images are side x side.

    Returns
    -------
    str
        `path`.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs)
    pred = np.argmax(probs, axis=1)
    conf = probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != y_true)
    worst = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    cols = 8 if len(worst) > 4 else max(len(worst), 1)
    rows = max(1, -(-len(worst) // cols))
    fig = figure(max(1.25 * cols + 0.2, 6.0), 1.5 * rows + 0.8)
    fig.suptitle(f"Most confident mistakes: {len(worst)} shown of {len(wrong)} wrong "
                 f"out of {len(y_true)}\n(true label, predicted label, probability of the "
                 f"prediction)", fontsize=11)
    if len(worst) == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
    vmax = 255 if np.asarray(X).dtype == np.uint8 else 1.0
    for k, i in enumerate(worst):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(np.asarray(X[i]).reshape(side, side), cmap="gray", vmin=0, vmax=vmax,
                  interpolation="nearest")
        ax.set_title(f"true {y_true[i]}, pred {pred[i]}\np = {conf[i]:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return save_png(fig, path)


def plot_training_curves(history, path):
    """Write loss and accuracy per epoch (train and validation) to a PNG.

    Parameters
    ----------
    history : dict of lists
        :attr:`fastmnist.MLP.history`: ``loss`` and ``accuracy`` (means over each epoch's
        training steps), optionally ``val_loss`` and ``val_accuracy`` (after each epoch).
    path : str or os.PathLike
        PNG file to write.

    Returns
    -------
    str
        `path`.
    """
    if not history or not history.get("loss"):
        raise InputError("no training history to plot (the model was not trained with fit)")
    fig = figure(10.0, 4.0)
    from matplotlib.ticker import MaxNLocator
    marker = "o" if len(history["loss"]) <= 30 else None
    panels = (("loss", "cross-entropy loss (nats per image)", 1.0, "Loss"),
              ("accuracy", "accuracy (%)", 100.0, "Accuracy"))
    for j, (key, ylabel, scale, name) in enumerate(panels):
        ax = fig.add_subplot(1, 2, j + 1)
        for k, label in ((key, "train (mean over the epoch)"),
                         (f"val_{key}", "validation (end of epoch)")):
            values = history.get(k)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, scale * np.asarray(values, dtype=np.float64), marker=marker,
                        markersize=4, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name} per epoch")
        n_epochs = len(history["loss"])
        if n_epochs <= 15:
            ax.set_xticks(range(1, n_epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if history.get("val_accuracy"):
        best = int(np.argmax(history["val_accuracy"]))
        fig.suptitle(f"Training curves: best validation accuracy "
                     f"{100 * history['val_accuracy'][best]:.2f}% at epoch {best + 1}")
    else:
        fig.suptitle("Training curves")
    return save_png(fig, path)


def write_evaluation_plots(model, X, y, out_dir, probs=None, backend="numpy"):
    """Write ``confusion_matrix.png``, ``worst_mistakes.png`` and, when the model has a training
    history, ``training_curves.png`` into `out_dir` (created if missing).

    Parameters
    ----------
    model : fastmnist.MLP
    X : ndarray, shape (n, n_features)
        Evaluation images (uint8 or float in [0, 1]).
    y : array_like of int, shape (n,)
    out_dir : str or os.PathLike
    probs : ndarray, shape (n, n_classes), optional
        The model's probabilities on X, if already computed.
    backend : str
        Backend for computing `probs` when not given.

    Returns
    -------
    list of str
        The files written.
    """
    os.makedirs(out_dir, exist_ok=True)
    if probs is None:
        probs = model.predict_proba(X, backend=backend)
    pred = np.argmax(probs, axis=1)
    side = int(round(np.sqrt(model.n_features)))
    written = [
        plot_confusion_matrix(y, pred, os.path.join(out_dir, "confusion_matrix.png"),
                              n_classes=model.n_classes),
    ]
    if side * side == model.n_features:
        written.append(plot_worst_mistakes(X, y, probs,
                                           os.path.join(out_dir, "worst_mistakes.png"),
                                           side=side))
    if model.history.get("loss"):
        written.append(plot_training_curves(model.history,
                                            os.path.join(out_dir, "training_curves.png")))
    return written
