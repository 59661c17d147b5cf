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
    """Set NUMBA_CACHE_DIR when Numba's own choices (next to the source, ~/.cache) fail."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        if _writable(os.environ["NUMBA_CACHE_DIR"]):
            return
    elif _writable(os.path.join(os.path.dirname(__file__), "__pycache__")):
        return
    else:
        user = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                            os.path.join(os.path.expanduser("~"), ".cache"), "fastmnist", "numba")
        if _writable(user):
            os.environ["NUMBA_CACHE_DIR"] = user
            return
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                 f"fastmnist-numba-{os.getuid()}")


_choose_cache_dir()

import numba  # noqa: E402  (after the cache folder is settled)

#: fastmath without "nnan"/"ninf": NaN and infinity checks keep working
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: compiled, cached, GIL released
jit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")

#: the same, with prange loops run on threads
pjit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy", parallel=True)

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
