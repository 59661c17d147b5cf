"""The sweeps: each builds its contenders, times them together and returns their Timings.

A sweep takes ``ctx``, the dict :func:`fastmnist.tools.study.run.run_study` fills once (the data,
its CSR copy, the plan, the roofs, the log and the notes list).
"""

import time

import numpy as np

from ...backends import numba_cpu, numpy_ref
from .. import head_to_head
from .contenders import blas_controller, epoch_fn, step_fn, threaded, torch_fn
from .timing import Spec, row_order, rows_per_call, time_sweep


def sweep_batch_size(ctx):
    """1. Epoch time vs batch size, 784-128-10 SGD float32, all backends."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    sizes, specs = (784, 128, 10), []
    for bs in plan.batch_sizes:
        bs = min(bs, n)
        rows = rows_per_call(bs, plan, n)
        order = row_order(bs, rows, ctx["perm"], n)
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        specs.append(Spec(f"numpy b{bs}", epoch_fn(numpy_ref, X, y, order, bs, sizes,
                                                   "float32"), "numpy", **common))
        specs.append(Spec(f"numba b{bs}", epoch_fn(numba_cpu, ctx["csr"], y, order, bs, sizes,
                                                   "float32"), "numba", **common))
        if ctx["torch"]:
            specs.append(Spec(f"torch b{bs}", torch_fn(X, y, order, bs, sizes, "float32",
                                                        ctx["threads"]), "torch", **common))
    return time_sweep("batch_size", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])


def sweep_threads(ctx):
    """2. 1 vs 2 (vs all) threads for numba, torch and (with threadpoolctl) NumPy's BLAS."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    counts = ctx["thread_counts"]
    if len(counts) < 2:
        ctx["notes"].append("threads: only one core is usable here, nothing to compare")
        return []
    sizes, specs = (784, 128, 10), []
    blas = blas_controller()
    if blas is None:
        ctx["notes"].append("threads: NumPy left out (its BLAS threads need threadpoolctl)")
    for bs in plan.thread_batches:
        bs = min(bs, n)
        rows = rows_per_call(bs, plan, n)
        order = row_order(bs, rows, ctx["perm"], n)
        for t in counts:
            common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows, threads=t)
            specs.append(Spec(f"numba b{bs} {t}T", threaded(epoch_fn(
                numba_cpu, ctx["csr"], y, order, bs, sizes, "float32"), "numba", t),
                "numba", **common))
            if ctx["torch"]:
                specs.append(Spec(f"torch b{bs} {t}T", threaded(torch_fn(
                    X, y, order, bs, sizes, "float32", t), "torch", t), "torch", **common))
            if blas is not None:
                specs.append(Spec(f"numpy b{bs} {t}T", threaded(epoch_fn(
                    numpy_ref, X, y, order, bs, sizes, "float32"), "numpy", t, blas),
                    "numpy", **common))
    try:
        return time_sweep("threads", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])
    finally:
        if ctx["torch"]:
            import torch
            torch.set_num_threads(ctx["threads"])


def sweep_dtype(ctx):
    """3. float32 vs float64, numba and the NumPy reference."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    specs = []
    for sizes, bs in plan.dtype_cases:
        bs = min(bs, n)
        rows = rows_per_call(bs, plan, n)
        order = row_order(bs, rows, ctx["perm"], n)
        arch = "-".join(map(str, sizes))
        for dtype in ("float32", "float64"):
            common = dict(sizes=sizes, batch_size=bs, dtype=dtype, rows=rows)
            short = "f32" if dtype == "float32" else "f64"
            specs.append(Spec(f"numba {arch} b{bs} {short}", epoch_fn(
                numba_cpu, ctx["csr"], y, order, bs, sizes, dtype), "numba", **common))
            specs.append(Spec(f"numpy {arch} b{bs} {short}", epoch_fn(
                numpy_ref, X, y, order, bs, sizes, dtype), "numpy", **common))
    return time_sweep("dtype", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])


def sweep_python_overhead(ctx):
    """4. One compiled call per epoch vs per chunk (as fit) vs per batch; the NumPy loop."""
    from ...train import CHUNK_STEPS
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    sizes, specs = (784, 128, 10), []
    for bs in plan.overhead_batches:
        rows = rows_per_call(bs, plan, n)
        order = row_order(bs, rows, ctx["perm"], n)
        steps = -(-rows // bs)
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        csr = ctx["csr"]
        specs.append(Spec(f"numba b{bs}: 1 call", epoch_fn(
            numba_cpu, csr, y, order, bs, sizes, "float32"), "numba",
            extra=dict(variant="one call", calls=1), **common))
        if steps > CHUNK_STEPS:
            specs.append(Spec(f"numba b{bs}: 1 call / {CHUNK_STEPS} steps", epoch_fn(
                numba_cpu, csr, y, order, bs, sizes, "float32", chunk=CHUNK_STEPS), "numba",
                extra=dict(variant=f"one call per {CHUNK_STEPS} steps (fit's shortest)",
                           calls=-(-steps // CHUNK_STEPS)), **common))
        specs.append(Spec(f"numba b{bs}: 1 call / step", epoch_fn(
            numba_cpu, csr, y, order, bs, sizes, "float32", chunk=1), "numba",
            extra=dict(variant="train_epoch once per step", calls=steps), **common))
        specs.append(Spec(f"numba b{bs}: train_step / step", step_fn(
            X, y, order, bs, sizes, "float32"), "numba",
            extra=dict(variant="train_step per step (gathers rows)", calls=steps), **common))
        specs.append(Spec(f"numpy b{bs}: Python loop", epoch_fn(
            numpy_ref, X, y, order, bs, sizes, "float32"), "numpy",
            extra=dict(variant="NumPy reference (Python loop)", calls=steps), **common))
    return time_sweep("python_overhead", specs, plan, n, ctx["roofs"], ctx["log"],
                      ctx["notes"])


def sweep_sparsity(ctx):
    """5. Layer 1 dense vs skipping zero pixels (numba), with NumPy's dense BLAS as reference."""
    X, y, n, plan = ctx["X"], ctx["y"], ctx["n"], ctx["plan"]
    modes = [("CSR (skip zeros)", "csr", ctx["csr"]),
             ("dense (every pixel)", "dense", numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE))]
    if hasattr(numba_cpu, "MODE_DENSE_SKIP"):
        modes.append(("dense rows, zeros tested", "dense-skip",
                      numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE_SKIP)))
    bs, specs = 128, []
    rows = rows_per_call(bs, plan, n)
    order = row_order(bs, rows, ctx["perm"], n)
    for sizes in plan.sparsity_sizes:
        arch = "-".join(map(str, sizes))
        common = dict(sizes=sizes, batch_size=bs, dtype="float32", rows=rows)
        for label, key, data in modes:
            specs.append(Spec(f"numba {arch} {key}", epoch_fn(
                numba_cpu, data, y, order, bs, sizes, "float32"), "numba",
                extra=dict(mode=label, arch=arch), **common))
        specs.append(Spec(f"numpy {arch} BLAS", epoch_fn(
            numpy_ref, X, y, order, bs, sizes, "float32"), "numpy",
            extra=dict(mode="NumPy reference (dense BLAS)", arch=arch), **common))
    timings = time_sweep("sparsity", specs, plan, n, ctx["roofs"], ctx["log"], ctx["notes"])
    # the one-off cost of the CSR copy
    prep = head_to_head.interleaved({"csr": lambda: numba_cpu.prepare(X),
                              "dense": lambda: numba_cpu.prepare(X, mode=numba_cpu.MODE_DENSE)},
                             repeats=3, warmup=1)
    csr = ctx["csr"]
    ctx["sparsity"] = dict(
        nonzero_fraction=float(len(csr.values)) / (len(X) * X.shape[1]),
        prepare_csr_s=float(np.median(prep["csr"])),
        prepare_dense_s=float(np.median(prep["dense"])),
        csr_mb=csr.nbytes() / 1e6, dense_mb=X.nbytes / 1e6, n_prepared=len(X))
    return timings


#: the recipes of sweep 7, in order of their training time
RECIPE_NAMES = ("seed", "default", "fast98", "fast985", "best")

#: the frontier's tricks, each switched on alone over a recipe: name -> (recipe, fit arguments
#: added)
TRICKS = {"fast98+shift1": ("fast98", {"shift": 1}),
          "fast98+smooth0.1": ("fast98", {"label_smoothing": 0.1}),
          "fast98+maxnorm3": ("fast98", {"max_norm": 3.0}),
          "fast98+dropout0.2": ("fast98", {"dropout": 0.2}),
          "fast98+ema0.999": ("fast98", {"ema": 0.999}),
          "fast98+affine": ("fast98", {"affine": (10.0, 0.1, 10.0)})}


def sweep_recipes(ctx):
    """7. Test accuracy vs cumulative training seconds of the named recipes, and of each trick
    switched on alone over its recipe (8., the frontier) (numba)."""
    from ... import recipes
    X, y, Xt, yt, plan = ctx["X_all"], ctx["y_all"], ctx["X_test"], ctx["y_test"], ctx["plan"]
    out = {}
    for name in RECIPE_NAMES + tuple(TRICKS):
        base, extra = TRICKS.get(name, (name, {}))
        _, kw = recipes.get(base, seed=0, backend="numba")
        kw.update(extra)
        if plan.recipe_epochs:
            kw["epochs"] = plan.recipe_epochs[name]
        # compile and warm up on a slice, so that the first epoch is not charged compilation
        warm, wkw = recipes.get(base, seed=0, backend="numba")
        wkw.update(extra, epochs=1)
        warm.fit(X[:1024], y[:1024], validation_data=(Xt[:256], yt[:256]), progress=False,
                 **wkw)
        model, _ = recipes.get(base, seed=0, backend="numba")
        ctx["log"](f"  recipe {name}: {model!r}, {kw['epochs']} epochs")
        t0 = time.perf_counter()
        hist = model.fit(X, y, validation_data=(Xt, yt), progress=False, **kw)
        wall = time.perf_counter() - t0
        out[name] = dict(model=repr(model), fit=dict(kw), epochs=len(hist["epoch_seconds"]),
                         epoch_seconds=list(hist["epoch_seconds"]),
                         val_accuracy=list(hist["val_accuracy"]), loss=list(hist["loss"]),
                         wall_s=wall, base=base, trick=dict(extra))
    return out
