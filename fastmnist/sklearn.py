"""scikit-learn's MLPClassifier and MLPRegressor, trained by fastmnist (the ``sklearn`` extra):
the public path of :mod:`fastmnist.integrations.sklearn`.

Change the import and nothing else::

    # from sklearn.neural_network import MLPClassifier
    from fastmnist.sklearn import MLPClassifier

Without scikit-learn, importing this module raises an ImportError that says how to install it.
"""

from .integrations.sklearn import FallbackWarning, MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "FallbackWarning"]
