"""Benchmark fixtures: real MNIST (loaded once, never downloaded), its Numba-prepared form,
and a mini-batch for the kernel benchmarks."""

from typing import NamedTuple

import numpy as np
import pytest

import fastmnist
from fastmnist.backends import numba_cpu
from fastmnist.errors import DataError

from ._common import BATCH


class Mnist(NamedTuple):
    X: np.ndarray        # uint8 (60000, 784)
    y: np.ndarray        # int64 (60000,)
    X_test: np.ndarray   # uint8 (10000, 784)
    y_test: np.ndarray   # int64 (10000,)


_loaded = {}


def _load():
    """Mnist, or the reason it is not here ($FASTMNIST_DATA, else the cache; no network)."""
    if "data" not in _loaded:
        try:
            X, y, Xt, yt = fastmnist.load_mnist(download=False)
            _loaded["data"] = Mnist(X, y.astype(np.int64), Xt, yt.astype(np.int64))
        except DataError as e:
            _loaded["data"] = f"MNIST not available without the network: {e}".splitlines()[0]
    return _loaded["data"]


@pytest.fixture(scope="session")
def mnist():
    """Mnist(X, y, X_test, y_test); skips when neither $FASTMNIST_DATA nor the cache has it."""
    data = _load()
    if isinstance(data, str):
        pytest.skip(data)
    return data


@pytest.fixture(scope="session")
def prepared(mnist):
    """numba_cpu.prepare of the training images, done once for every Numba benchmark."""
    return numba_cpu.prepare(mnist.X)


@pytest.fixture(scope="session")
def batch():
    """(x uint8 (BATCH, 784), y int64 (BATCH,)): MNIST rows from a fixed shuffle, or, without
    MNIST, random pixels of the same sparsity (81% zeros) so that the kernels still run."""
    data = _load()
    if isinstance(data, str):
        rng = np.random.default_rng(0)
        x = (rng.random((BATCH, 784)) < 0.19) * rng.integers(1, 256, (BATCH, 784))
        return x.astype(np.uint8), rng.integers(0, 10, BATCH).astype(np.int64)
    rows = np.random.default_rng(0).permutation(len(data.X))[:BATCH]
    return np.ascontiguousarray(data.X[rows]), data.y[rows]


def pytest_terminal_summary(terminalreporter, config):
    """A table of the benchmarks that recorded a test accuracy (the ``sklearn`` groups):
    median seconds beside the accuracy."""
    session = getattr(config, "_benchmarksession", None)
    rows = []
    for bench in getattr(session, "benchmarks", None) or []:
        info = getattr(bench, "extra_info", {}) or {}
        if "test_accuracy" not in info:
            continue
        stats = getattr(bench, "stats", None)
        median = getattr(stats, "median", None) if stats is not None else None
        rows.append((bench.group or "", bench.name, median, info["test_accuracy"]))
    if not rows:
        return
    terminalreporter.section("time and test accuracy")
    for group, name, median, acc in sorted(rows):
        took = "-" if median is None else f"{median:9.3f} s"
        terminalreporter.write_line(f"{group:28s} {name:52s} {took:>11s}  accuracy {acc:.4f}")
