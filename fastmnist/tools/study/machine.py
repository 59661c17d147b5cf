"""What the study ran on: CPU, cores, memory, load and library versions."""

import os
import platform

import numpy as np

from .. import head_to_head
from ..harness.timing import cpu_model


def machine_info():
    """CPU, cores, memory, load and library versions of this machine, as a dict."""
    import numba

    from ... import __version__
    info = dict(summary=head_to_head.machine(), python=platform.python_version(),
                numpy=np.__version__, numba=numba.__version__, fastmnist=__version__,
                platform=platform.platform(), logical_cpus=os.cpu_count())
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    info["cpu"] = cpu_model()
    info["simd"] = ", ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags)
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cores"] = os.cpu_count()
    try:
        info["memory_gb"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        info["memory_gb"] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config differs across NumPy versions
        info["blas"] = "unknown"
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        import matplotlib
        info["matplotlib"] = matplotlib.__version__
    except ImportError:
        info["matplotlib"] = None
    return info


def load_average():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None
