"""Shared fixtures: real MNIST (skipped when FASTMNIST_DATA is unset), small random nets."""

import os

import numpy as np
import pytest


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
