"""Numba settings in one place: njit flags, the cache folder and its keys, the thread count.

Imported before anything compiles: if neither the package folder nor the user cache can
be written, Numba is pointed at a temporary folder, so caching degrades instead of failing.

The kernels of this package are cached under a key that covers more than Numba's own (the
source file of the function): the sources of the modules compiled into them (``_lanes``,
``_plain``, ``_shift``, ``kernels``, ``numba_cpu``, this one) and the kernel path in use
(``lanes`` or ``plain``, see :data:`PATH`), each path in a folder of its own. An edit to
``_lanes.py`` alone therefore recompiles the kernels that inline it, and switching paths
never loads the other's code.
"""

import contextlib
import hashlib
import os
import platform
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
import numba.extending  # noqa: E402
from numba.core import caching  # noqa: E402

_MASKED_LOAD_IR = """
declare <8 x float> @llvm.masked.load.v8f32.p0(ptr, i32, <8 x i1>, <8 x float>)
define <8 x float> @probe(ptr %p, <8 x i1> %m) {
  %v = call <8 x float> @llvm.masked.load.v8f32.p0(ptr %p, i32 4, <8 x i1> %m,
                                                   <8 x float> zeroinitializer)
  ret <8 x float> %v
}
"""


def masked_loads_native(cpu=None, features=None):
    """Whether the x86-64 CPU the kernels compile for loads a masked vector in one instruction
    (AVX's ``vmaskmov``, AVX-512's mask registers). Without AVX (x86-64 CPUs before it, and
    Atom-class Pentium and Celeron chips up to Tremont) LLVM splits each masked load of
    ``_lanes`` into one branch per lane: a 784-128-10 epoch took 0.57 s on the intrinsics
    against 0.22 s on the plain loops (``NUMBA_CPU_NAME=x86-64 NUMBA_CPU_FEATURES=""`` on an
    AMD EPYC; NumPy 0.28 s).

    cpu, features: LLVM's CPU name and feature string; None: Numba's (``NUMBA_CPU_NAME``,
    ``NUMBA_CPU_FEATURES``; the host's where those are not set). Asks LLVM itself, by
    compiling one masked load for that target, unless both are the host's."""
    from llvmlite import binding as ll
    cpu, features = _target(cpu, features)
    if cpu is None and features is None:
        return bool(ll.get_host_cpu_features().get("avx", False))
    try:
        asm = _asm(_MASKED_LOAD_IR, cpu, features)
    except Exception:  # noqa: BLE001  (no verdict: the intrinsics' self-test still guards)
        return True
    return "maskmov" in asm or "{%k" in asm


_COMPRESS_IR = """
declare void @llvm.masked.compressstore.v64i8(<64 x i8>, ptr, <64 x i1>)
define void @probe(<64 x i8> %v, ptr %p, <64 x i1> %m) {
  call void @llvm.masked.compressstore.v64i8(<64 x i8> %v, ptr %p, <64 x i1> %m)
  ret void
}
"""


def compress_native(cpu=None, features=None):
    """Whether the CPU the kernels compile for packs the selected bytes of a vector in one
    instruction (AVX-512 VBMI2's ``vpcompressb``: Intel Ice Lake and later, AMD Zen 4 and
    later), so that ``_lanes.compress_nonzeros`` can gather a row's nonzero pixels.

    cpu, features: as for :func:`masked_loads_native`. Asks LLVM, by compiling one generic
    compress (which LLVM lowers everywhere, to a loop of scalar stores without VBMI2), unless
    both are the host's; False when LLVM cannot say."""
    from llvmlite import binding as ll
    cpu, features = _target(cpu, features)
    if cpu is None and features is None:
        host = ll.get_host_cpu_features()
        return bool(host.get("avx512vbmi2", False) and host.get("avx512bw", False))
    try:
        return "vpcompressb" in _asm(_COMPRESS_IR, cpu, features)
    except Exception:  # noqa: BLE001  (no verdict: the scalar gather is always right)
        return False


def _asm(ir_text, cpu, features):
    """LLVM's assembly for ir_text on that CPU and feature string (None: the host's)."""
    from llvmlite import binding as ll
    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    tm = ll.Target.from_default_triple().create_target_machine(
        cpu=cpu or ll.get_host_cpu_name(),
        features=ll.get_host_cpu_features().flatten() if features is None else features)
    return tm.emit_assembly(ll.parse_assembly(ir_text))


def _target(cpu, features):
    """(cpu, features) with None replaced by Numba's settings (None where those are unset)."""
    from numba.core import config
    return (cpu if cpu is not None else config.CPU_NAME,
            features if features is not None else config.CPU_FEATURES)


#: where the kernels come from: "lanes" (the LLVM vector intrinsics of ``_lanes``) or "plain"
#: (plain Numba loops, ``_plain``): plain when FASTMNIST_INTRINSICS=0, the CPU is not x86-64,
#: or it has no masked vector loads (:func:`masked_loads_native`); ``kernels`` also falls back
#: to plain when the intrinsics fail to compile.
PATH = ("lanes" if os.environ.get("FASTMNIST_INTRINSICS", "1").strip() != "0"
        and platform.machine().lower() in ("x86_64", "amd64") and masked_loads_native()
        else "plain")

#: whether the layer-1 gather of a uint8 row's nonzero pixels uses ``vpcompressb``
#: (``_lanes.compress_nonzeros``): the intrinsics' path on a CPU with AVX-512 VBMI2
COMPRESS = PATH == "lanes" and compress_native()

_HERE = os.path.dirname(os.path.abspath(__file__))
# compiled into the kernels that call them (kernels' into those of numba_cpu, columns and gemm;
# numba_cpu's constants into columns')
_INLINED = ("_lanes.py", "_plain.py", "_shift.py", "_sync.py", "_jit.py", "kernels.py",
            "numba_cpu.py")


def _sources_hash():
    h = hashlib.sha256()
    for name in _INLINED:
        with open(os.path.join(_HERE, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


_SOURCES = _sources_hash()


class _KernelLocator(caching._CacheLocator):
    """Numba's own locator for a file of this folder, with the path in use as a subfolder and
    the inlined modules' sources in the stamp (see the module docstring)."""

    def __init__(self, inner):
        self._inner = inner
        # Numba names this file in its "cannot cache" warning
        self._py_file = getattr(inner, "_py_file", None)

    def ensure_cache_path(self):
        path = self.get_cache_path()
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()

    def get_cache_path(self):
        return os.path.join(self._inner.get_cache_path(), PATH)

    def get_source_stamp(self):
        return (self._inner.get_source_stamp(), _SOURCES, PATH)

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None
        for other in caching.CacheImpl._locator_classes:
            if other is cls:
                continue
            inner = other.from_function(py_func, py_file)
            if inner is not None:
                self = cls(inner)
                try:
                    self.ensure_cache_path()
                except OSError:
                    return None
                return self
        return None


def cache_folder():
    """The folder of Numba's cache for this package's kernels (None when none is writable)."""
    if not CACHE:
        return None
    return os.environ.get("NUMBA_CACHE_DIR") or os.path.join(_HERE, "__pycache__")


def cache_key(*extra):
    """A short key for what the cached kernels depend on besides their types: the inlined
    sources, Numba, the CPU target and the kernel path, plus `extra` strings and the sources
    of the named files of this folder."""
    from llvmlite import binding
    h = hashlib.sha256("|".join([
        _SOURCES, numba.__version__, os.environ.get("NUMBA_CPU_NAME", ""),
        os.environ.get("NUMBA_CPU_FEATURES", ""), binding.get_host_cpu_name(),
        binding.get_host_cpu_features().flatten(), PATH]).encode())
    for item in extra:
        path = os.path.join(_HERE, item)
        if item.endswith(".py") and os.path.exists(path):
            with open(path, "rb") as f:
                h.update(f.read())
        else:
            h.update(item.encode())
    return h.hexdigest()[:16]


def _self_test_marker():
    """Path of the file that says the intrinsics passed their self-test for these sources,
    this Numba and this CPU target (None when no cache folder is writable)."""
    folder = cache_folder()
    return None if folder is None else os.path.join(folder, f"fastmnist-lanes-ok-{cache_key()}")


def self_test_passed():
    """Whether the intrinsics' self-test passed before here (a marker in the cache folder),
    so that a warm start skips it (loading its kernel costs about 0.2 s)."""
    marker = _self_test_marker()
    return marker is not None and os.path.exists(marker)


def mark_self_test_passed():
    """Leave the marker :func:`self_test_passed` looks for; never fails."""
    marker = _self_test_marker()
    if marker is not None:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w") as f:
                f.write("the vector intrinsics passed _lanes.self_test here\n")


if _KernelLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, _KernelLocator)

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


@numba.extending.intrinsic
def borrow(typingctx, arr):
    """arr (any Numba array) without its reference count: the same data, shape and strides,
    no memory-info pointer, so that the views taken of it skip Numba's reference counting.

    Numba counts references to an array's memory with an atomic add and subtract on its
    memory info for every view (every slice, every array passed down a call). In a parallel
    loop all threads take views of the same arrays, so those atomics bounce one cache line
    between the cores, dozens of times per row: measured on 784-128-10 batches of 128, each
    thread's half of a batch took 196 us with the other thread running against 157 us alone.
    Only for arrays that outlive the borrowed value (a kernel's own arguments).
    """
    if not isinstance(arr, numba.types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        src = context.make_array(sig.args[0])(context, builder, args[0])
        dst = context.make_array(sig.return_type)(context, builder)
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, field, getattr(src, field))
        return dst._getvalue()
    return sig, codegen


def n_threads():
    """Threads Numba will use now."""
    return numba.get_num_threads()


def n_parts(rows):
    """Parts a batch of `rows` is split into, each summed into its own gradient buffer.

    One per thread the machine gives Numba (NUMBA_NUM_THREADS), not per thread running:
    fewer threads run several parts each, so the summation order, and with it every bit of
    the result, does not depend on ``threads=`` or on the governor's choice.
    """
    return max(1, min(numba.config.NUMBA_NUM_THREADS, rows))


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
