"""fastmnist: train small MLPs on MNIST on the CPU, fast.

>>> import fastmnist as fm
>>> X_train, y_train, X_test, y_test = fm.load_mnist()
>>> model = fm.MLP(hidden=(128,), seed=0)
>>> history = model.fit(X_train, y_train, epochs=5, validation_data=(X_test, y_test))
>>> model.score(X_test, y_test)
"""

from . import backends, recipes
from .data import load_mnist
from .errors import (
    ChecksumError,
    DataError,
    DivergedError,
    FastMnistError,
    FormatError,
    InputError,
    ModelFileError,
)
from .model import MLP

__version__ = "0.1.0"

__all__ = [
    "MLP", "load_mnist", "backends", "recipes", "__version__", "FastMnistError", "InputError",
    "DataError", "FormatError", "ChecksumError", "ModelFileError", "DivergedError",
]
