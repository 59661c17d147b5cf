"""The seed notebook's functional API: the public path of :mod:`fastmnist.integrations.compat`.

A user of the teaching notebook changes one import line::

    from fastmnist.compat import *          # instead of the notebook's own definitions

The functions, their shapes and the notebook's quirks are documented in
:mod:`fastmnist.integrations.compat`; these are the same objects.
"""

from .integrations.compat import (
    ReLU,
    ReLU_deriv,
    backward_prop,
    forward_prop,
    get_accuracy,
    get_predictions,
    gradient_descent,
    init_params,
    one_hot,
    softmax,
    update_params,
)

__all__ = [
    "init_params", "ReLU", "softmax", "forward_prop", "ReLU_deriv", "one_hot", "backward_prop",
    "update_params", "get_predictions", "get_accuracy", "gradient_descent",
]
