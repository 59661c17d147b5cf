"""One set of contenders for every speed figure: the benchmarks, ``fastmnist bench`` and
``fastmnist study`` all time these, and validate each against the NumPy reference first.

- :mod:`.epochs`: an :class:`~.epochs.Epoch` per contender, each trained in place from given
  weights: the Numba and NumPy backends' ``train_epoch``; ``fit`` as a user calls it (its
  preparation included); plain NumPy as a user writes it (float data scaled once, outside the
  timer); the seed notebook's own iteration (:mod:`fastmnist.compat`, ``backend="numpy"``).
- :mod:`.peers`: the same epochs in PyTorch and JAX, as their users write them.
- :mod:`.inference`: ``predict_proba`` against onnxruntime and PyTorch on the same weights.
- :mod:`.checks`: tolerances and the checks run before anything is timed.
- :mod:`.timing`: interleaved medians with a pause before each run, the GEMM roof, FLOPs.
"""
