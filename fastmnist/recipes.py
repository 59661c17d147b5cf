"""Named training recipes: a model plus the arguments of its ``fit``.

>>> model, fit_kwargs = fastmnist.recipes.get("default", seed=0)
>>> history = model.fit(X_train, y_train, **fit_kwargs)
"""

from .errors import InputError
from .model import MLP


def seed(seed=0):
    """The teaching notebook's recipe, exactly: 784-10-10, ReLU/softmax, float64, weights and
    biases from U(-0.5, 0.5), full-batch gradient descent, lr 0.2, 500 iterations, no shuffle.

    Unlike the notebook, bias gradients are per unit (the notebook adds one scalar, the sum of
    all ``dZ``, to every bias; :mod:`fastmnist.compat` reproduces that quirk). About 86-88%
    test accuracy.
    """
    model = MLP(hidden=(10,), dtype="float64", init="uniform", seed=seed)
    return model, dict(epochs=500, batch_size=None, lr=0.2, optimizer="sgd", schedule=None,
                       shuffle=False)


def default(seed=0):
    """What ``fastmnist train`` runs with no arguments: 784-128-10, float32, He init, SGD with
    momentum 0.9, lr 0.05 with cosine decay, batch 128, 5 epochs; about 98% test accuracy
    in a few seconds with the Numba backend.
    """
    model = MLP(hidden=(128,), dtype="float32", init="he", seed=seed)
    return model, dict(epochs=5, batch_size=128, lr=0.05, optimizer="momentum",
                       schedule="cosine")


def fast98(seed=0):
    """98% test accuracy as fast as possible (see the docstring's measurements)."""
    model = MLP(hidden=(256,), dtype="float32", init="he", seed=seed)
    return model, dict(epochs=4, batch_size=128, lr=0.003, optimizer="adam",
                       schedule="onecycle")


RECIPES = {"seed": seed, "default": default, "fast98": fast98}


def get(name, seed=0, backend="numba"):
    """Return ``(model, fit_kwargs)`` for the recipe `name` ("seed", "default", "fast98").

    Parameters
    ----------
    name : str
    seed : int
        Seeds the initialization and the shuffling.
    backend : {"numba", "numpy"}
        Put into ``fit_kwargs``.
    """
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    model, kwargs = RECIPES[name](seed)
    kwargs["backend"] = backend
    return model, kwargs
