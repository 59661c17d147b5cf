"""The IDX format of the MNIST files: reading (gzipped or not), writing, and the checksums.

The four MNIST files (`FILES`) are IDX files: a big-endian header (magic 0x00000801 for labels,
0x00000803 for images, then one 32-bit size per dimension) followed by unsigned bytes. The
mirrors serve them gzipped; `read_idx` detects gzip from the content and refuses corrupt,
truncated or oversized input. `SHA256` holds the digest of each file's decompressed content,
the same whatever its source; `decode_idx` parses a file and checks it against that digest.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..errors import ChecksumError, DataError, FormatError, InputError

__all__ = [
    "COLS",
    "FILES",
    "ROWS",
    "SHA256",
    "SIZES",
    "TEST_IMAGES",
    "TEST_LABELS",
    "TRAIN_IMAGES",
    "TRAIN_LABELS",
    "as_idx_array",
    "check_sha256",
    "decode_idx",
    "idx_bytes",
    "kind_of",
    "read_idx",
    "sha256_array",
    "write_idx",
]

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

_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
ROWS = COLS = 28
_MAX_IDX_BYTES = 1 << 27  # 128 MiB: far above MNIST's 47 MB, stops a decompression bomb
_GZIP_MAGIC = b"\x1f\x8b"


def kind_of(name: str) -> str:
    """``"images"`` or ``"labels"``: what the MNIST file `name` holds."""
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
    if found == "images" and shape[1:] != (ROWS, COLS):
        raise FormatError(
            f"{where}: images are {shape[1]}x{shape[2]}, expected {ROWS}x{COLS}"
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


def as_idx_array(array: Any) -> np.ndarray:
    """`array` as C-contiguous uint8 labels ``(n,)`` or images ``(n, 28, 28)``; else InputError."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise InputError(f"IDX arrays must hold integers 0..255, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2 and arr.shape[1] == ROWS * COLS:
        arr = arr.reshape(-1, ROWS, COLS)
    if arr.ndim not in (1, 3) or (arr.ndim == 3 and arr.shape[1:] != (ROWS, COLS)):
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
    arr = as_idx_array(array)
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


def sha256_array(arr: np.ndarray) -> str:
    """SHA-256 of the IDX encoding of a uint8 array, without building the bytes."""
    h = hashlib.sha256(_idx_header(arr))
    h.update(np.ascontiguousarray(arr).reshape(-1).data)
    return h.hexdigest()


def check_sha256(digest: str, name: str, where: str) -> None:
    """Raise ChecksumError unless `digest` is the published SHA-256 of the MNIST file `name`."""
    expected = SHA256[name]
    if digest != expected:
        raise ChecksumError(
            f"{where}: SHA-256 of the decompressed {name} is {digest}, expected {expected}"
        )


def decode_idx(source: Any, name: str) -> tuple[np.ndarray, bytearray]:
    """Decompress, parse and verify one MNIST file; return the array and the IDX bytes."""
    buf, where = _decompressed(source)
    arr = _parse_idx(buf, kind_of(name), where)
    check_sha256(hashlib.sha256(buf).hexdigest(), name, where)
    return arr, buf
