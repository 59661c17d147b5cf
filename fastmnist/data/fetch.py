"""The network: the public MNIST mirrors, downloads with timeouts, a size limit and progress bars.

`fetch_url` is the one function through which `load_mnist` downloads from the mirrors (the
PyPI fallback runs pip in a subprocess instead, see `fastmnist.data.pypi`). Tests and embedders
that must serve the mirrors from elsewhere replace ``fastmnist.data.fetch.fetch_url`` (or point
`MIRRORS` at other URLs: ``file://`` works too).
"""

from __future__ import annotations

import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["CONNECT_TIMEOUT", "MIRRORS", "fetch_url", "net_reason", "want_progress"]

#: Seconds to wait for a network connection (and for each read) before giving up on a mirror.
CONNECT_TIMEOUT = 5.0

#: Base URLs tried in order; each holds ``<name>.gz`` for the four names in `FILES`.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's first choice
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's read_data_sets
    "http://yann.lecun.com/exdb/mnist/",  # the original (often refuses scripted downloads)
)

_MAX_DOWNLOAD = 1 << 26  # 64 MiB: no mirror file is larger than 10 MB
_USER_AGENT = "fastmnist (python-urllib)"


def want_progress(progress: bool | None) -> bool:
    """`progress` if given, else whether stderr is a terminal (the default of `load_mnist`)."""
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


def fetch_url(url: str, *, timeout: float | None = None, progress: bool = False,
               desc: str | None = None) -> bytes:
    """Download `url` into memory: the one way `load_mnist` reaches a mirror.

    Parameters
    ----------
    url : str
        ``https://``, ``http://`` or ``file://`` URL.
    timeout : float, optional
        Seconds for the host's DNS lookup, the connection and each read; default
        `CONNECT_TIMEOUT`.
    progress : bool, default False
        Show a tqdm progress bar on stderr.
    desc : str, optional
        The bar's label; default the URL's last component.

    Returns
    -------
    bytes
        The content, as served (gzipped for the mirrors).

    Raises
    ------
    urllib.error.HTTPError
        The server answered with an error: `load_mnist` tries the next mirror for this file.
    OSError
        Anything else (unresolvable host, timeout, refused connection, a download over 64 MiB
        or shorter than its Content-Length): `load_mnist` does not ask that mirror again.

    Notes
    -----
    `load_mnist` calls it as ``fastmnist.data.fetch.fetch_url(url, timeout=..., progress=...,
    desc=...)``, looked up at each call: replacing it (as the tests do) serves the mirrors from
    elsewhere.
    """
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


def net_reason(e: BaseException) -> str:
    """Why a download failed, in a few words, for the list of sources tried."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, TimeoutError):
        return f"timed out ({e})" if str(e) else f"timed out after {CONNECT_TIMEOUT:g} s"
    return f"{type(e).__name__}: {e}"
