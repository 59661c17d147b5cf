"""Integrations: fastmnist meeting other tools' APIs and file formats, on top of the core.

- :mod:`.compat`: the seed notebook's functional API (public path :mod:`fastmnist.compat`);
- :mod:`.sklearn`: scikit-learn's MLPClassifier and MLPRegressor (:mod:`fastmnist.sklearn`),
  trained by :mod:`._sk_solver`, scikit-learn's stochastic solvers on fastmnist's backends;
- :mod:`.onnx`: ONNX export (:meth:`fastmnist.MLP.to_onnx`, ``fastmnist export``);
- :mod:`.images`: image files -> MNIST rows (:mod:`fastmnist.images`, ``fastmnist predict``);
- :mod:`.evaluation_plots`: the PNGs of ``fastmnist evaluate --plots`` (:mod:`fastmnist.plots`).

Users import the public paths; each is a thin module at the top of the package that re-exports
the one here. Nothing is imported here: each integration needs its own optional extra.
"""
