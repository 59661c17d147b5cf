"""Shared fixtures: real MNIST (skipped when FASTMNIST_DATA is unset), small random nets."""

import os

import numpy as np
import pytest
from hypothesis import settings

# Property tests are derandomized by default, so that CI and every developer run the same
# examples and a failure reproduces; `pytest --hypothesis-profile=wide` searches afresh and
# ten times as far (`examples` scales each test's count by the profile's max_examples / 100).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("wide", max_examples=1000)
settings.load_profile("ci")

# `fastmnist train` compiles before training, whatever the state of the cache: its outputs and
# its evaluations are then the same on a first run as on later ones (test_warmup tests the
# first run's background compilation on its own)
os.environ["FASTMNIST_COMPILE"] = "wait"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The tests that read a background job's result run last, in their order: by then their
    jobs have run beside the other tests."""
    items.sort(key=lambda item: item.get_closest_marker("background") is not None)


def pytest_collection_finish(session):
    """Start the background jobs (``tests/background.py``) of the selected tests, unless a
    benchmark is timed in this run."""
    import background
    jobs = [mark.args[0] for item in session.items for mark in item.iter_markers("background")]
    session.config.stash[_JOBS] = jobs
    opt = session.config.option
    if getattr(opt, "benchmark_disable", True) and not getattr(opt, "benchmark_only", False):
        background.start(jobs)


def pytest_sessionfinish(session):
    import background
    background.stop(session.config.stash.get(_JOBS, []))


_JOBS = pytest.StashKey()


@pytest.fixture(autouse=True, scope="session")
def _sigint_as_in_a_terminal():
    """Python's own SIGINT handler for the session, and what was there put back after.

    The tests that send this process SIGINT expect it; a run started in the background (``cmd
    &`` in a script, ``nohup``) has SIGINT ignored instead, and fit leaves it ignored."""
    import signal
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def examples(n):
    """`n` property-test examples under the default profile, scaled by the profile in use."""
    return max(1, n * settings.default.max_examples // 100)


@pytest.fixture(scope="session")
def mnist():
    """(X_train, y_train, X_test, y_test) from $FASTMNIST_DATA; skips without it."""
    if not os.environ.get("FASTMNIST_DATA"):
        pytest.skip("FASTMNIST_DATA is not set: no real MNIST here")
    import fastmnist
    return fastmnist.load_mnist()


def random_net(sizes, dtype, seed=0, scale=0.5):
    """[(W, b), ...] with N(0, scale^2) entries for layer widths `sizes`."""
    rng = np.random.default_rng(seed)
    return [(np.ascontiguousarray(rng.standard_normal((a, b)) * scale, dtype=dtype),
             np.ascontiguousarray(rng.standard_normal(b) * scale, dtype=dtype))
            for a, b in zip(sizes[:-1], sizes[1:])]


def random_pixels(n, d, seed=0, density=0.2):
    """uint8 (n, d) images, about `density` of the pixels nonzero, like MNIST."""
    rng = np.random.default_rng(seed)
    return ((rng.random((n, d)) < density) * rng.integers(1, 256, (n, d))).astype(np.uint8)


def random_targets(head, n, c, seed):
    """Targets of n rows for the output `head`: integer labels in [0, c) (softmax), 0/1 rows
    (n, c) (logistic), or standard normal rows (n, c) (identity)."""
    rng = np.random.default_rng(seed)
    if head == "softmax":
        return rng.integers(0, c, n)
    if head == "logistic":
        return (rng.random((n, c)) > 0.5).astype(np.float64)
    return rng.standard_normal((n, c))


def params_close(params_f, params_r, dtype):
    """Every W and b of two nets within ten times the parity tolerance of dtype."""
    from tolerances import tol
    rtol, atol = tol(dtype)
    for (Wf, bf), (Wr, br) in zip(params_f, params_r):
        np.testing.assert_allclose(Wf, Wr, rtol=rtol * 10, atol=atol * 10)
        np.testing.assert_allclose(bf, br, rtol=rtol * 10, atol=atol * 10)


def learnable(n, seed=0):
    """(uint8 images (n, 784), int64 labels (n,)): the label is which pixel band is bright.
    A 10-class problem that a tiny net learns in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    X = random_pixels(n, 784, seed, density=0.05)
    for i, label in enumerate(y.tolist()):
        X[i, label * 70:label * 70 + 40] = 200
    return X, y


@pytest.fixture
def offline(monkeypatch):
    """No network: no host name resolves (so no mirror answers), and pip cannot reach PyPI."""
    import socket
    import subprocess

    real_run = subprocess.run

    def getaddrinfo(host, *args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    def run(cmd, *args, **kwargs):
        if cmd[1:4] != ["-m", "pip", "download"]:
            return real_run(cmd, *args, **kwargs)
        requirement = cmd[-1]
        return subprocess.CompletedProcess(cmd, 1, "", (
            "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, "
            "status=None)) after connection broken by 'NewConnectionError: Failed to establish "
            "a new connection: [Errno -3] Temporary failure in name resolution'\n"
            f"ERROR: Could not find a version that satisfies the requirement {requirement} "
            "(from versions: none)\n"
            f"ERROR: No matching distribution found for {requirement}\n"))

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(subprocess, "run", run)
