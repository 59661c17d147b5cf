"""The measuring scripts in benchmarks/ that pytest does not collect still run."""

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_start_time_child_trains_a_step():
    """One child of benchmarks/start_time.py with this environment's cache (warm after the
    other tests; a cold cache only makes it slower): both timings come back, positive."""
    imp, step = _load("start_time")._run()
    assert imp > 0 and step > 0
