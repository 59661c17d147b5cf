"""Local sources of MNIST: the explicit folder (``data_dir`` / ``$FASTMNIST_DATA``) and the cache.

An explicit folder holds the four IDX files (gzipped or not, also in torchvision's
``MNIST/raw`` layout or with dotted names) or a Keras ``mnist.npz``; when one is named it is the
only source, and any problem there is an error. The cache holds decompressed, verified IDX
files: a cached file that fails its checksum is deleted (unless another process replaced it
meanwhile), and files are written through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..errors import DataError
from .idx import FILES, decode_idx
from .npz import read_npz

__all__ = ["HELP", "cache_folder", "cache_get", "cache_put", "explicit_source", "find_idx",
           "find_npz", "load_folder"]

#: How to provide MNIST by hand; ends every "could not be loaded" message.
HELP = (
    "To provide MNIST by hand, put the four files train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
    "(from any MNIST mirror; gzipped or not) or a Keras-style mnist.npz in one folder, then "
    "set FASTMNIST_DATA=/that/folder or call load_mnist(data_dir='/that/folder'). Each file "
    "is checked against the SHA-256 of its decompressed content (fastmnist.data.SHA256)."
)


def _idx_candidates(folder: Path, name: str) -> list[Path]:
    """Where a file may sit in a folder: plain or .gz, torchvision's MNIST/raw, dotted names."""
    names = [name, name + ".gz"]
    dotted = name.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some downloads name it
    names += [dotted, dotted + ".gz"]
    return [d / n for d in (folder, folder / "MNIST" / "raw") for n in names]


def find_idx(folder: Path, name: str) -> Path | None:
    """The first of `name`'s candidate paths in `folder` that is a file, or None."""
    return next((p for p in _idx_candidates(folder, name) if p.is_file()), None)


def find_npz(folder: Path) -> Path | None:
    """`folder` itself when it is an ``.npz``, else its (or its MNIST/) ``mnist.npz``, or None."""
    if folder.is_file() and folder.suffix == ".npz":
        return folder
    return next((p for p in (folder / "mnist.npz", folder / "MNIST" / "mnist.npz")
                 if p.is_file()), None)


def explicit_source(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The explicit folder and where it was named (data_dir or $FASTMNIST_DATA), or None."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir"
    env = os.environ.get("FASTMNIST_DATA")
    if env:
        return Path(env).expanduser(), "$FASTMNIST_DATA"
    return None


def cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache: `cache_dir`, else $FASTMNIST_CACHE, else $XDG_CACHE_HOME/fastmnist, else
    ~/.cache/fastmnist."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FASTMNIST_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastmnist"


def load_folder(folder: Path, origin: str) -> dict[str, np.ndarray]:
    """Load all four files from an explicit folder (or .npz file); any problem raises."""
    problems: list[str] = []
    errors: list[DataError] = []
    if not folder.exists():
        problems.append(f"{folder}: does not exist")
    else:
        if folder.is_dir():
            found = {name: find_idx(folder, name) for name in FILES}
            if all(found.values()):
                try:
                    return {name: decode_idx(path, name)[0] for name, path in found.items()}
                except DataError as e:
                    errors.append(e)
                    problems.append(str(e))
            else:
                for name, path in found.items():
                    if path is None:
                        tried = ", ".join(p.name if p.parent == folder else
                                          str(p.relative_to(folder))
                                          for p in _idx_candidates(folder, name))
                        problems.append(f"{name}: not found (looked for {tried})")
        npz = find_npz(folder)
        if npz is not None:
            try:
                return read_npz(npz)
            except DataError as e:
                errors.append(e)
                problems.append(str(e))
        elif folder.is_dir():
            problems.append(f"{folder / 'mnist.npz'}: not found")
        else:
            problems.append(f"{folder}: is neither a folder nor an .npz file")
    label = f"{origin} {folder}" if origin == "data_dir" else f"{folder} (from {origin})"
    msg = (f"MNIST could not be loaded from {label}. An explicit folder is the only source "
           "tried (no cache, no download); problems:\n"
           + "\n".join(f"  - {p}" for p in problems) + "\n" + HELP)
    cls = type(errors[0]) if errors else DataError
    raise cls(msg)


def cache_get(folder: Path, name: str) -> tuple[np.ndarray | None, str]:
    """Return a verified cached array, or None and why; a bad cached file is deleted."""
    reasons = []
    for path in (folder / name, folder / (name + ".gz")):
        try:
            before = path.stat()
        except OSError:
            continue
        try:
            return decode_idx(path, name)[0], ""
        except DataError as e:
            reasons.append(f"{e}; discarded")
            _discard(path, before)
    return None, "; ".join(reasons) or "not cached"


def _discard(path: Path, before: os.stat_result) -> None:
    """Delete a bad cache file, unless another process has replaced it meanwhile."""
    with contextlib.suppress(OSError):
        now = path.stat()
        if (now.st_ino, now.st_size, now.st_mtime_ns) == (
                before.st_ino, before.st_size, before.st_mtime_ns):
            path.unlink()


def cache_put(folder: Path, name: str, data: bytes | bytearray | memoryview) -> None:
    """Store verified, decompressed IDX bytes in the cache; a failure only warns."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / name) as f:
            f.write(data)
    except OSError as e:
        warnings.warn(f"fastmnist: cannot write the MNIST cache {folder}: {e}", RuntimeWarning,
                      stacklevel=3)
