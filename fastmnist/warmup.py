"""The Numba kernels compiled ahead of a run, or beside it, so that a first run does not wait.

Numba compiles a kernel once per combination of argument types, 30-50 s for the training
kernels on 2 cores, and caches the machine code on disk. Which combination a run needs is
fixed by three things, its :func:`spec`: the parameters' dtype, the input's dtype, and whether
pixel indices fit in 2 bytes. Widths, depth, optimizer, batch size and schedule are values the
kernels read at run time, so one compilation serves them all.

After a spec has been compiled into the cache, a marker file says so (:func:`is_cached`),
keyed like the cache itself (the kernels' sources, Numba, the CPU target, the kernel path).
:func:`compile_spec` compiles a spec here and now (``fastmnist compile``);
:func:`start_background` compiles it in a subprocess while the caller trains with the NumPy
backend (``fit(compile="background")``, the default of a first ``fastmnist train``), and
:class:`Background` tells the training loop when the kernels are ready to be switched to.
The subprocess outlives its parent, so an interrupted or short first run still leaves the
cache filled for the next one.

``python -m fastmnist.warmup DTYPE X_DTYPE N_FEATURES`` is that subprocess.
"""

import contextlib
import functools
import json
import os
import subprocess
import sys
import time

import numpy as np

#: rows of the synthetic data the warm-up trains on: enough for two steps and a validation
WARM_ROWS = 128

#: niceness of the background compiler (and of its autogroup: :func:`step_back`): the
#: training it runs beside, and any other program, come first. At 19 a NumPy fit on two
#: OpenBLAS threads beside it ran as fast as alone (0.31 s a quarter epoch, 0.45 s at 10);
#: the compiler takes what the CPUs leave idle, as on a first run's second core
NICE = 19

#: a lock older than this is a compiler that died without cleaning up
STALE_LOCK_S = 600


def spec(dtype, x_dtype, n_features):
    """What decides the kernels' compiled types: ``{"dtype", "x_dtype", "n_features"}``.

    Parameters
    ----------
    dtype : dtype of the parameters (float32 or float64)
    x_dtype : dtype of the input: uint8 stays, anything else reaches the kernels as `dtype`
    n_features : int
        Only whether it is below 65536 matters (2-byte pixel indices); it is kept as given
        so that the warm-up data has the caller's shape.
    """
    dtype = np.dtype(dtype).name
    x_dtype = "uint8" if np.dtype(x_dtype) == np.uint8 else dtype
    return {"dtype": dtype, "x_dtype": x_dtype, "n_features": int(n_features)}


def _key(s):
    parts = dict(s, n_features=s["n_features"] < 65536)
    return _key_of(json.dumps(parts, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _key_of(parts):
    """The marker key of a spec (hashes the kernels' sources: computed once per process)."""
    from .backends import cache_key
    return cache_key(parts, "kernels.py", "numba_cpu.py", "columns.py", "gemm.py")


#: specs seen cached in this process: a marker once there stays (the cache is not emptied
#: under a running process), so predict's backend choice costs a dict lookup after the first
_seen_cached = set()


def _path(s, suffix):
    from .backends import cache_folder
    folder = cache_folder()
    return None if folder is None else os.path.join(folder, f"fastmnist-warm-{_key(s)}{suffix}")


def is_cached(s):
    """Whether the kernels of spec `s` were compiled into Numba's cache (a marker says so)."""
    seen = (s["dtype"], s["x_dtype"], s["n_features"])
    if seen in _seen_cached:
        return True
    marker = _path(s, "")
    if marker is not None and os.path.exists(marker):
        _seen_cached.add(seen)
        return True
    return False


def mark_cached(s):
    """Leave the marker of :func:`is_cached` for spec `s` (after its kernels were compiled or
    loaded in this process); never fails."""
    marker = _path(s, "")
    if marker is not None:
        with contextlib.suppress(OSError), open(marker, "w") as f:
            f.write(json.dumps(s) + "\n")


def compile_spec(s):
    """Compile (or load) every kernel a run of spec `s` uses, in this process, and leave the
    marker of :func:`is_cached`: one epoch of a small model on WARM_ROWS synthetic rows, its
    validation, and a prediction."""
    from .errors import DivergedError
    from .model import MLP
    rng = np.random.default_rng(0)
    n, d = WARM_ROWS, s["n_features"]
    x_dtype = np.dtype(s["x_dtype"])
    if x_dtype == np.uint8:
        X = (rng.random((n, d)) < 0.2) * rng.integers(1, 256, (n, d))
    else:
        X = (rng.random((n, d)) < 0.2) * rng.random((n, d))
    X = X.astype(x_dtype)
    y = np.arange(n) % 10
    # 32 units go by rows (as deeper nets do), 64 by units on two or more cores (.columns)
    for hidden in (32, 64):
        model = MLP(hidden=(hidden,), dtype=s["dtype"], n_features=d, n_classes=10)
        with contextlib.suppress(DivergedError):  # compiled all the same
            model.fit(X, y, epochs=1, batch_size=64, optimizer="adam", backend="numba",
                      validation_data=(X, y), progress=False, compile="wait")
    model.predict_proba(X[:3], backend="numba")  # one image's path, and a batch's
    model.predict_proba(X, backend="numba")
    mark_cached(s)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def lock_pid(lock):
    """The pid of the compiler that wrote the lock file `lock` (its first word), or None where
    the file is missing or holds none."""
    try:
        with open(lock) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _compiling_elsewhere(lock):
    """Whether a live process holds `lock` (a background compile of the same spec)."""
    pid = lock_pid(lock)
    try:
        if pid is None or time.time() - os.path.getmtime(lock) > STALE_LOCK_S:
            return False
    except OSError:
        return False
    return _alive(pid)


class Background:
    """A compilation of spec `s` running in another process (see :func:`start_background`).

    Attributes
    ----------
    spec : dict
    process : subprocess.Popen or None
        None when another process (an earlier run's) was already compiling the spec.
    """

    def __init__(self, s, process):
        self.spec = s
        self.process = process

    def ready(self):
        """Whether the kernels can be used now: compiled and cached (never blocks)."""
        return is_cached(self.spec)

    def failed(self):
        """Whether the compiler exited without producing the kernels (its log says why)."""
        if self.process is not None:
            if self.process.poll() is None:
                return False
        else:
            lock = _path(self.spec, ".lock")
            if lock is not None and _compiling_elsewhere(lock):
                return False
        return not self.ready()

    def log(self):
        """Path of the compiler's log file (its stderr)."""
        return _path(self.spec, ".log")


def start_background(s):
    """Start compiling the kernels of spec `s` in a subprocess; return a :class:`Background`.

    Returns None when that cannot work: the kernels are cached already, or no cache folder is
    writable (a subprocess's compilation would then be lost). When an earlier run is still
    compiling the same spec, it is waited for instead of started twice.
    """
    from .backends import CACHE
    if not CACHE or is_cached(s):
        return None
    lock = _path(s, ".lock")
    if _compiling_elsewhere(lock):
        return Background(s, None)
    try:
        log = open(_path(s, ".log"), "w")  # noqa: SIM115 (handed to the child)
    except OSError:
        return None
    args = [sys.executable, "-m", "fastmnist.warmup", s["dtype"], s["x_dtype"],
            str(s["n_features"])]
    with log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True)
    with contextlib.suppress(OSError), open(lock, "w") as f:
        f.write(f"{process.pid}\n")
    return Background(s, process)


def wait(s, timeout=None):
    """Block until the kernels of spec `s` are cached: wait for the process compiling them
    now, or compile them here. Returns "cached", "waited" or "compiled"."""
    if is_cached(s):
        return "cached"
    lock = _path(s, ".lock")
    t0 = time.monotonic()
    if lock is not None and _compiling_elsewhere(lock):
        while _compiling_elsewhere(lock) and not is_cached(s):
            if timeout is not None and time.monotonic() - t0 > timeout:
                break
            time.sleep(0.2)
        if is_cached(s):
            return "waited"
    compile_spec(s)
    return "compiled"


def step_back():
    """Put this process behind the training it compiles for: nice NICE, for the process and,
    on Linux, for its autogroup.

    Started in a session of its own (so that a Ctrl-C of the run does not stop it), the
    compiler is an autogroup of its own where the kernel groups sessions
    (``CONFIG_SCHED_AUTOGROUP``, on in most distributions), and a process's nice weighs only
    against its own group's processes: the groups share the CPUs equally. With a busy-looping
    neighbour on 2 cores, the training then got about half a core, and a first ``fastmnist
    train`` took 13.4 s against 8.4 s with the group's nice set too (medians of 3, 2-vCPU
    Xeon). Other processes' BLAS suffered most: a quarter epoch of the default recipe on the
    NumPy backend, two OpenBLAS threads, took 5-6 s beside the compiler against 0.32 s alone,
    0.38-0.49 s with the group at nice 10 and 0.29-0.38 s at 19 (each BLAS call had waited
    for a thread that shared its core with the compiler as an equal).
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICE)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
        f.write(f"{NICE}\n")


def main(argv=None):
    """``python -m fastmnist.warmup DTYPE X_DTYPE N_FEATURES``: compile that spec."""
    dtype, x_dtype, n_features = (sys.argv[1:] if argv is None else argv)
    s = spec(dtype, x_dtype, int(n_features))
    step_back()
    t0 = time.perf_counter()
    try:
        compile_spec(s)
    finally:
        lock = _path(s, ".lock")
        with contextlib.suppress(OSError):
            os.remove(lock)
    print(f"fastmnist.warmup: {s} compiled in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
