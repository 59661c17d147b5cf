"""Numba settings in one place: njit flags, the cache folder, the thread count.

Imported before anything compiles: if neither the package folder nor the user cache can
be written, Numba is pointed at a temporary folder, so caching degrades instead of failing.
"""

import contextlib
import os
import tempfile


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _choose_cache_dir():
    """Make sure Numba can write its cache; return False when no folder is writable.

    Numba's own choices are ``$NUMBA_CACHE_DIR``, else ``__pycache__`` next to the source;
    when they fail, NUMBA_CACHE_DIR is set to ``$XDG_CACHE_HOME/fastmnist/numba`` (or
    ``~/.cache/...``), else to a folder in the temporary directory.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        if _writable(os.environ["NUMBA_CACHE_DIR"]):
            return True
    elif _writable(os.path.join(os.path.dirname(__file__), "__pycache__")):
        return True
    user = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                        os.path.join(os.path.expanduser("~"), ".cache"), "fastmnist", "numba")
    candidates = [user]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    try:
        candidates.append(os.path.join(tempfile.gettempdir(), f"fastmnist-numba-{uid}"))
    except OSError:  # no usable temporary folder at all
        pass
    for folder in candidates:
        if _writable(folder):
            os.environ["NUMBA_CACHE_DIR"] = folder
            return True
    os.environ.pop("NUMBA_CACHE_DIR", None)
    return False


#: whether compiled kernels are cached on disk (False when no cache folder is writable)
CACHE = _choose_cache_dir()

import numba  # noqa: E402  (after the cache folder is settled)

if not CACHE:
    import warnings

    warnings.warn("fastmnist: no writable folder for Numba's cache (tried $NUMBA_CACHE_DIR, the "
                  "package folder, ~/.cache and the temporary folder); kernels are compiled "
                  "again in every process", RuntimeWarning, stacklevel=2)

#: fastmath without "nnan"/"ninf": NaN and infinity checks keep working
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: compiled, cached, GIL released
jit = numba.njit(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy")

#: the same, with prange loops run on threads
pjit = numba.njit(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy", parallel=True)

prange = numba.prange


def n_threads():
    """Threads Numba will use now."""
    return numba.get_num_threads()


@contextlib.contextmanager
def threads(n=None):
    """Run the block with `n` Numba threads (None: leave as is), restoring the count after."""
    if n is None:
        yield numba.get_num_threads()
        return
    n = int(n)
    if n < 1:
        from ..errors import InputError
        raise InputError(f"threads must be >= 1, got {n}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)
