"""Evaluation plots as PNG files (the ``plot`` extra, matplotlib): the public path of
:mod:`fastmnist.integrations.evaluation_plots`, which ``fastmnist evaluate --plots`` calls.

    write_evaluation_plots(model, X_test, y_test, "plots")   # -> the paths of the PNGs written
"""

from .integrations.evaluation_plots import (
    DPI,
    confusion_matrix,
    figure,
    plot_confusion_matrix,
    plot_training_curves,
    plot_worst_mistakes,
    save_png,
    write_evaluation_plots,
)

__all__ = ["write_evaluation_plots", "plot_confusion_matrix", "plot_worst_mistakes",
           "plot_training_curves", "confusion_matrix", "figure", "save_png", "DPI"]
