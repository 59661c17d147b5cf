"""Atomic file writes: a temporary file in the target's folder, fsync, then ``os.replace``.

Readers of the target path see either the old complete file or the new complete file, never a
partial one, and two processes writing the same path at once both succeed (the last replace wins).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any


def _current_umask() -> int:
    """Return the process umask (read once; ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(folder: str) -> None:
    """Best-effort fsync of a directory so a rename survives a crash (POSIX only)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], binary: bool = True, *, encoding: str = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces `path` atomically when the block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        Final location of the file. Its folder must exist (else ``FileNotFoundError`` naming
        `path` and its folder).
    binary : bool, default True
        Open the temporary file in binary (``"wb"``) or text (``"w"``) mode.
    encoding : str, default "utf-8"
        Text encoding, used only when `binary` is False.

    Yields
    ------
    file object
        The open temporary file, created in the same folder as `path` so that ``os.replace``
        is a rename on one file system.

    Notes
    -----
    On success the data is flushed and fsynced, the file gets the permissions a newly created
    file would get (or keeps those of the file it replaces), and it is moved into place with
    ``os.replace``. On any exception (including ``KeyboardInterrupt``) the temporary file is
    removed and the exception propagates; `path` is left untouched.

    Examples
    --------
    >>> with atomic_write("report.md", binary=False) as f:  # doctest: +SKIP
    ...     f.write("# Report\\n")
    """
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    if not os.path.isdir(folder):  # else mkstemp names its own temporary file in the error
        raise FileNotFoundError(errno.ENOENT, f"cannot write it: the folder {folder} does not "
                                "exist", os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        if binary:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline="")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(target).st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_UMASK
        with contextlib.suppress(OSError):
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
