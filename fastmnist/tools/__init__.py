"""Tools: the command line's commands and the measuring, on top of the core and the integrations.

- :mod:`.commands`: one module per ``fastmnist`` command (``add_parser``, ``run``), dispatched
  by :mod:`fastmnist.cli`;
- :mod:`.harness`: the contenders every speed figure times (fastmnist's backends and ``fit``,
  plain NumPy, the notebook, PyTorch, JAX), the checks before timing, interleaved timing;
- :mod:`.head_to_head`: ``fastmnist bench``, fit against each contender on a few cases;
- :mod:`.study`: ``fastmnist study``, the sweeps behind docs/study/report.md and its figures.

The pytest-benchmark suite in ``benchmarks/`` (repository root) times the same harness.
Nothing here is imported by the core or the integrations.
"""
