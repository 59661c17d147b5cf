"""The thread count of NumPy's BLAS, for a block: OpenBLAS as NumPy's wheels bundle it.

While another process compiles on the other core (:mod:`fastmnist.warmup`), NumPy training on
two BLAS threads waits at every call for a thread the OS has given to the compiler: measured
on 2 cores, the default recipe's NumPy epoch went from 0.63 s to 8-21 s. One thread avoids
that. The library is found as ``threadpoolctl`` finds it, without depending on it; any other
BLAS (Accelerate, MKL) is left as it is.
"""

import contextlib
import ctypes
import glob
import os

#: (set, get) function names, newest OpenBLAS builds first
_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads"))

_found = []  # [(set, get)] once looked up; [None] when there is no OpenBLAS


def _libraries():
    import numpy
    root = os.path.dirname(os.path.dirname(numpy.__file__))
    folders = [os.path.join(root, "numpy.libs"), os.path.join(os.path.dirname(numpy.__file__),
                                                               ".dylibs")]
    for folder in folders:
        yield from sorted(glob.glob(os.path.join(folder, "*openblas*")))


def _functions():
    if not _found:
        _found.append(None)
        for path in _libraries():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name, get_name in _SYMBOLS:
                if hasattr(lib, set_name) and hasattr(lib, get_name):
                    set_fn, get_fn = getattr(lib, set_name), getattr(lib, get_name)
                    set_fn.argtypes, set_fn.restype = [ctypes.c_int], None
                    get_fn.argtypes, get_fn.restype = [], ctypes.c_int
                    _found[0] = (set_fn, get_fn)
                    return _found[0]
    return _found[0]


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with NumPy's OpenBLAS on at most `n` threads, restoring the count after.

    Yields the count in force (None when NumPy's BLAS is not an OpenBLAS found here).
    """
    functions = _functions()
    if functions is None:
        yield None
        return
    set_fn, get_fn = functions
    previous = get_fn()
    set_fn(min(n, previous))
    try:
        yield get_fn()
    finally:
        set_fn(previous)
