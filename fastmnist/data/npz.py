"""Keras-style ``mnist.npz``: the four MNIST arrays, keys x_train, y_train, x_test, y_test."""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import Any

import numpy as np

from ..errors import DataError, FormatError, InputError
from .idx import (
    FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    as_idx_array,
    check_sha256,
    kind_of,
    sha256_array,
)

__all__ = ["NPZ_KEYS", "read_npz"]

#: The array of each MNIST file (see `FILES`) in a Keras ``mnist.npz``.
NPZ_KEYS = {TRAIN_IMAGES: "x_train", TRAIN_LABELS: "y_train", TEST_IMAGES: "x_test",
             TEST_LABELS: "y_test"}


def read_npz(path: str | os.PathLike[str], *, check: bool = True) -> dict[str, np.ndarray]:
    """Read a Keras-style ``mnist.npz`` (keys x_train, y_train, x_test, y_test).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file. It is opened with ``allow_pickle=False``.
    check : bool, default True
        Verify each array's IDX encoding against `SHA256`.

    Returns
    -------
    dict
        File name (see `FILES`) -> uint8 array, images ``(n, 28, 28)``, labels ``(n,)``.

    Raises
    ------
    FormatError
        Not an npz, a missing key, object arrays, or wrong shapes or values.
    ChecksumError
        When `check` is True and an array differs from the published MNIST.
    """
    where = os.fspath(path)
    out: dict[str, np.ndarray] = {}
    try:
        z = np.load(where, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise FormatError(f"{where}: not an .npz archive")
        with z:
            for name in FILES:
                out[name] = _npz_array(z, name, where)
    except FileNotFoundError:
        raise DataError(f"{where}: not found") from None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise FormatError(f"{where}: unreadable npz ({type(e).__name__}: {e})") from None
    if check:
        for name, arr in out.items():
            check_sha256(sha256_array(arr), name, f"{where}[{NPZ_KEYS[name]}]")
    return out


def _npz_array(z: Any, name: str, where: str) -> np.ndarray:
    key = NPZ_KEYS[name]
    if key not in z.files:
        raise FormatError(f"{where}: missing array {key!r} (has {sorted(z.files)})")
    arr = z[key]
    if arr.dtype.kind not in "iu":
        raise FormatError(f"{where}: {key} has dtype {arr.dtype}, expected uint8")
    try:
        arr = as_idx_array(arr)
    except InputError as e:
        raise FormatError(f"{where}: {key}: {e}") from None
    if kind_of(name) == "images" and arr.ndim != 3:
        raise FormatError(f"{where}: {key} has shape {arr.shape}, expected images")
    if kind_of(name) == "labels" and (arr.ndim != 1 or (arr.size and arr.max() > 9)):
        raise FormatError(f"{where}: {key} is not a vector of labels 0..9")
    return arr
