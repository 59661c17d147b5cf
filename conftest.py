"""Repository-wide pytest settings: a plain ``pytest`` is the fast default loop.

pytest collects ``tests/`` and ``benchmarks/`` (``testpaths``). Without a benchmark option, each
benchmark runs once, untimed, as a smoke test (``--benchmark-disable``); ``pytest
--benchmark-only`` (or ``--benchmark-enable``) times them as pytest-benchmark does.
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    opt = config.option
    if not hasattr(opt, "benchmark_disable"):  # pytest-benchmark not installed
        return
    if not (opt.benchmark_only or opt.benchmark_enable or opt.benchmark_skip):
        opt.benchmark_disable = True
