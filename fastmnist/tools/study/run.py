"""Run the whole study: load MNIST, measure the roofs, run every sweep, write the files."""

import json
import os
import tempfile
import time
from dataclasses import asdict

import numpy as np

from ..._atomic import atomic_write
from ..._extras import require
from ...backends import numba_cpu
from ...errors import InputError
from .. import head_to_head
from .contenders import blas_controller
from .figures import write_plots
from .machine import load_average, machine_info
from .markdown import write_markdown
from .sweeps import (
    sweep_batch_size,
    sweep_dtype,
    sweep_python_overhead,
    sweep_recipes,
    sweep_sparsity,
    sweep_threads,
)
from .timing import FULL, QUICK, Plan, Timing


def require_matplotlib():
    """Raise a clear ImportError when matplotlib (the ``plot`` extra) is missing."""
    require("matplotlib", "fastmnist study (its plots)", "matplotlib", "plot")


def check_out_dir(out_dir):
    """Create `out_dir` and make sure files can be written there: fail before measuring."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise InputError(f"{out_dir}: cannot write the report there "
                         f"({e.strerror or e})") from None


def run_study(out_dir, quick=False, data_dir=None, log=print):
    """Run every sweep, then write report.md, study.json and the PNG plots into `out_dir`.

    Returns the list of paths written.
    """
    require_matplotlib()
    from ...data import load_mnist
    plan = QUICK if quick else FULL
    check_out_dir(out_dir)
    started = time.perf_counter()
    load_before = load_average()
    X_all, y_all, X_test, y_test = load_mnist(data_dir, verbose=True)
    y_all = np.ascontiguousarray(y_all, dtype=np.int64)
    X, y = X_all, y_all
    n = len(X)
    info = machine_info()
    log(info["summary"])
    threads = numba_cpu.n_threads()
    import numba
    max_threads = min(info["usable_cores"] or 1, numba.config.NUMBA_NUM_THREADS)
    thread_counts = tuple(sorted({1, min(2, max_threads), max_threads}))
    peers = head_to_head.available_peers()
    log("measuring the GEMM roof...")
    roofs = {"float32": head_to_head.gemm_roof(np.float32),
             "float64": head_to_head.gemm_roof(np.float64)}
    blas = blas_controller()
    roof_1t = None
    if blas is not None:
        with blas.limit(limits=1, user_api="blas"):
            roof_1t = head_to_head.gemm_roof(np.float32)
    ctx = dict(X=X, y=y, n=n, X_all=X_all, y_all=y_all, X_test=X_test,
               y_test=y_test.astype(np.int64), plan=plan, log=log, notes=[], roofs=roofs,
               torch="torch" in peers, threads=threads, thread_counts=thread_counts,
               perm=np.random.default_rng(0).permutation(n).astype(np.int64))
    t = time.perf_counter()
    ctx["csr"] = numba_cpu.prepare(X)
    ctx["prepare_s"] = time.perf_counter() - t
    results, seconds = {}, {}
    sweeps = (("batch_size", sweep_batch_size), ("threads", sweep_threads),
              ("dtype", sweep_dtype), ("python_overhead", sweep_python_overhead),
              ("sparsity", sweep_sparsity), ("recipes", sweep_recipes))
    for key, fn in sweeps:
        log(f"sweep {key}...")
        t = time.perf_counter()
        results[key] = fn(ctx)
        seconds[key] = time.perf_counter() - t
        log(f"  {seconds[key]:.1f} s")
    study = dict(plan=plan, info=info, roofs=roofs, roof_1t=roof_1t, peers=peers,
                 threads=threads, thread_counts=thread_counts, n=n, results=results,
                 seconds=seconds, notes=ctx["notes"], sparsity=ctx.get("sparsity", {}),
                 load=(load_before, load_average()), prepare_s=ctx["prepare_s"])
    log("writing the report and plots...")
    paths = write_plots(study, out_dir)
    study["total_s"] = time.perf_counter() - started
    paths.append(write_markdown(study, out_dir))
    paths.append(write_json(study, out_dir))
    return paths


def write_json(study, out_dir):
    """All the raw numbers as study.json."""
    def enc(o):
        if isinstance(o, Timing):
            return o.as_dict()
        if isinstance(o, Plan):
            return {k: (list(v.items()) if isinstance(v, dict) else v)
                    for k, v in asdict(o).items()}
        if isinstance(o, (np.integer, np.floating)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)
    path = os.path.join(out_dir, "study.json")
    with atomic_write(path, binary=False) as f:
        json.dump(study, f, default=enc, indent=1)
    return path
