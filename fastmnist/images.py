"""Image files -> MNIST-style uint8 rows (the ``images`` extra, Pillow): the public path of
:mod:`fastmnist.integrations.images`, where the steps of :func:`to_mnist` are documented.

    X = load_images(["three.png", "seven.jpg"])   # uint8 (2, 784), white digits on black
"""

from .integrations.images import (
    BG_SIDE,
    BOX,
    INK,
    INK_LEVEL,
    INK_RANGE,
    MIN_PROBA,
    MNIST_INK,
    NOISE,
    PAPER_FLOOR,
    SIDE,
    WORK,
    digit_warning,
    ink_fraction,
    is_dark_on_light,
    load_image,
    load_images,
    save_png,
    to_mnist,
)

__all__ = ["to_mnist", "load_image", "load_images", "is_dark_on_light", "ink_fraction",
           "digit_warning", "save_png", "SIDE", "BOX", "INK", "WORK", "BG_SIDE", "PAPER_FLOOR",
           "NOISE", "INK_LEVEL", "INK_RANGE", "MNIST_INK", "MIN_PROBA"]
