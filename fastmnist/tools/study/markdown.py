"""report.md: machine and settings, then per sweep a table, a plot and sentences derived from
the measured numbers."""

import os

import numpy as np

from ..._atomic import atomic_write
from . import frontier
from .figures import PLOTS
from .timing import select, select_one
from .words import SAME, TIMING_HEADER, compare, fmt_s, fmt_x, md_table, timing_row

_QUICK = "--quick (a reduced smoke-test sweep; numbers are indicative only)"


def _with_bullets(lines, words):
    """A section's lines, then one bullet per sentence of `words`, then a blank line."""
    return lines + [f"- {w}" for w in words] + [""]


def _section_machine(study):
    info, roofs, plan = study["info"], study["roofs"], study["plan"]
    load = study["load"]
    lines = ["## Machine and settings", "",
             f"- CPU: {info['cpu']} ({info['simd'] or 'SIMD flags unknown'}), "
             f"{info['logical_cpus']} logical CPUs, {info['usable_cores']} usable by this "
             f"process" + (f", {info['memory_gb']:.0f} GB memory" if info["memory_gb"] else ""),
             f"- `fastmnist.tools.head_to_head.machine()`: {info['summary']}",
             f"- Versions: fastmnist {info['fastmnist']}, Python {info['python']}, "
             f"NumPy {info['numpy']} (BLAS: {info['blas']}), Numba {info['numba']}, "
             f"PyTorch {info['torch'] or 'not installed'}, "
             f"matplotlib {info['matplotlib']}",
             f"- Platform: {info['platform']}",
             f"- Threads: Numba and PyTorch use {study['threads']} unless a sweep says "
             "otherwise; NumPy's BLAS its default.",
             f"- Mode: {_QUICK if plan.quick else 'full study'}; "
             f"each timing is the median of {plan.repeats} runs interleaved round-robin with "
             "the other contenders of its sweep, after one checked run (finite losses) that "
             "also compiles and warms up.",
             "- Training step: SGD, He init, MNIST training set "
             f"({study['n']} images, uint8, scaled by 1/255 inside the kernels), unless "
             "stated.",
             "- Rows/call marked `*` time a fraction of an epoch (a whole number of batches "
             "of a fixed shuffle) and scale it to a whole epoch; small batch sizes would "
             "otherwise take minutes.",
             "- `spread %` is (slowest - fastest) / median of the timed runs: how noisy "
             "the machine was.",
             ]
    if load[0] is not None:
        lines.append(f"- Load average (1 min) at the start: {load[0][0]:.2f}, at the end: "
                     f"{load[1][0]:.2f} (other processes share these cores).")
    lines += ["", "### GEMM roof", "",
              f"The limit to measure against: NumPy's BLAS on a 1024x1024x1024 matmul, best of "
              f"7: **{roofs['float32']:.1f} GFLOP/s in float32** and "
              f"**{roofs['float64']:.1f} GFLOP/s in float64**"
              + (f" ({study['roof_1t']:.1f} GFLOP/s float32 on one thread)"
                 if study["roof_1t"] else "") + ". "
              "Achieved GFLOP/s below count the dense work of a training pass "
              "(`fastmnist.tools.harness.timing.train_flops`: forward, dW of every layer, dA "
              "of every layer but the first), skipped zero pixels included, so a zero-skipping "
              "kernel can show more than it computes. `% roof` is against the all-thread roof "
              "of the run's dtype.", ""]
    if study["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in study["notes"]] + [""]
    return lines


def _section_batch(study):
    ts = study["results"]["batch_size"]
    lines = ["## 1. Epoch time vs batch size", "",
             "784-128-10, float32, SGD, one epoch of the training set. "
             f"![epoch time vs batch size]({PLOTS['batch_size']})", "",
             md_table(TIMING_HEADER, [timing_row(t, t.backend) for t in ts]), ""]
    backends = [b for b in ("numpy", "numba", "torch") if select(ts, backend=b)]
    words = []
    for b in backends:
        mine = sorted(select(ts, backend=b), key=lambda t: t.batch_size)
        best = min(mine, key=lambda t: t.epoch_s)
        small = mine[0]
        # the smallest batch size within SAME of the best: beyond it, bigger batches buy little
        enough = next(t for t in mine if t.epoch_s <= best.epoch_s * SAME)
        s = (f"**{b}**: fastest epoch at batch {best.batch_size} ({fmt_s(best.epoch_s)}, "
             f"{best.images_s:,.0f} images/s); batch {small.batch_size} takes "
             f"{fmt_x(small.epoch_s / best.epoch_s)} as long ({fmt_s(small.epoch_s)}).")
        if enough.batch_size < best.batch_size:
            s += (f" From batch {enough.batch_size} on the epoch is within "
                  f"{100 * (SAME - 1):.0f}% of the fastest: larger batches stop paying there.")
        else:
            s += " Every step up in batch size up to there still paid more than "
            s += f"{100 * (SAME - 1):.0f}%."
        words.append(s)
    if "numba" in backends:
        for other in [b for b in backends if b != "numba"]:
            ratios = []
            for t in select(ts, backend="numba"):
                o = select_one(ts, backend=other, batch_size=t.batch_size)
                if o:
                    ratios.append((o.epoch_s / t.epoch_s, t.batch_size))
            if ratios:
                hi, lo = max(ratios), min(ratios)
                words.append(f"numba vs {other}: from {fmt_x(lo[0])} (batch {lo[1]}) to "
                             f"{fmt_x(hi[0])} (batch {hi[1]}) "
                             + ("faster than" if lo[0] >= 1 else "the speed of") + f" {other}"
                             + ("" if lo[0] >= 1 else
                                " (below 1x numba is the slower one)") + ".")
    words.append("What batch size buys: fewer, larger steps amortize per-step costs (calls, "
                 "weight updates, thread hand-offs) over more images; what it costs is "
                 "optimizer steps: an epoch at batch 128 takes "
                 f"{-(-study['n'] // 128)} updates, at batch {study['n']} one, so the "
                 "fastest epoch is rarely the fastest way to an accuracy (see section 7).")
    return _with_bullets(lines, words)


def _section_threads(study):
    ts = study["results"]["threads"]
    lines = ["## 2. Threads", ""]
    if not ts:
        return lines + ["Not measured (one usable core).", ""]
    counts = study["thread_counts"]
    top = counts[-1]
    lines += [f"784-128-10, float32, SGD; {', '.join(map(str, counts))} threads. "
              f"![threads]({PLOTS['threads']})", "",
              md_table(["contender", "threads"] + TIMING_HEADER[1:],
                     [[t.backend, t.threads] + timing_row(t, "")[1:] for t in ts]), ""]
    words = []
    for b in ("numba", "torch", "numpy"):
        speedups = []
        for bs in sorted({t.batch_size for t in select(ts, backend=b)}):
            one, many = select_one(ts, backend=b, batch_size=bs, threads=1), \
                select_one(ts, backend=b, batch_size=bs, threads=top)
            if one and many:
                speedups.append((bs, one.epoch_s / many.epoch_s))
        if not speedups:
            continue
        parts = ", ".join(f"{fmt_x(r)} at batch {bs}" for bs, r in speedups)
        paying = [bs for bs, r in speedups if r >= SAME]
        s = f"**{b}**: {top} threads vs 1: {parts}."
        if not paying:
            s += (f" At no batch size measured do {top} threads gain more than "
                  f"{100 * (SAME - 1):.0f}%: threading does not pay here.")
        elif len(paying) == len(speedups):
            s += f" Threads pay at every batch size measured (down to {speedups[0][0]})."
        else:
            s += (f" Threads pay from batch {min(paying)}; below that the hand-off between "
                  "threads costs about what the second core gains.")
        best = max(r for _, r in speedups)
        s += f" Best: {100 * best / top:.0f}% of perfect {top}-thread scaling."
        words.append(s)
    words.append("What threads buy: a share of each batch per core; the price is a "
                 "synchronization and a gradient reduction per step, fixed whatever the batch "
                 "size, so small batches gain least. On a shared machine the second core may "
                 "be busy with someone else's work.")
    return _with_bullets(lines, words)


def _section_dtype(study):
    ts = study["results"]["dtype"]
    lines = ["## 3. float32 vs float64", "",
             f"SGD, same initial weights and batches. ![float32 vs float64]({PLOTS['dtype']})",
             "",
             md_table(["contender", "dtype"] + TIMING_HEADER[1:] + ["mean loss, last run"],
                    [[t.name.rsplit(" ", 1)[0], t.dtype] + timing_row(t, "")[1:]
                     + [f"{t.extra.get('last_mean_loss', float('nan')):.4f}"] for t in ts]), ""]
    words = []
    for t32 in select(ts, dtype="float32"):
        t64 = select_one(ts, dtype="float64", backend=t32.backend, sizes=t32.sizes,
                   batch_size=t32.batch_size)
        if not t64:
            continue
        what = f"{t32.backend} {'-'.join(map(str, t32.sizes))} batch {t32.batch_size}"
        s = f"**{what}**: " + compare("float32", t32.epoch_s, "float64", t64.epoch_s) + "."
        l32, l64 = t32.extra.get("last_mean_loss"), t64.extra.get("last_mean_loss")
        if l32 is not None and l64 is not None:
            s += (f" After the same {1 + study['plan'].repeats} passes the mean training loss "
                  f"differs by {abs(l32 - l64):.2g} ({l32:.4f} vs {l64:.4f}).")
        words.append(s)
    words.append("What float32 buys: half the bytes per weight and activation, twice the "
                 "numbers per SIMD register; it pays where the arithmetic or the memory "
                 "traffic dominates and buys little where per-step overheads do.")
    return _with_bullets(lines, words)


def _section_overhead(study):
    ts = study["results"]["python_overhead"]
    lines = ["## 4. The cost of Python in the loop", "",
             "784-128-10, float32, SGD. `train_epoch` runs a whole run of steps in one compiled "
             "call; called once per batch from a Python loop it pays the call, argument "
             "checks, parameter flattening and buffer allocation every step. `train_step` is "
             "the protocol's single step (rows gathered in NumPy first). "
             f"![python overhead]({PLOTS['python_overhead']})", "",
             md_table(["variant", "calls/epoch"] + TIMING_HEADER[1:],
                    [[t.extra["variant"] + f" ({t.backend})",
                      round(t.extra["calls"] * t.n / t.rows)] + timing_row(t, "")[1:]
                     for t in ts]), ""]
    words = []
    for bs in sorted({t.batch_size for t in ts}):
        one = select_one(ts, batch_size=bs, name=f"numba b{bs}: 1 call")
        if not one:
            continue
        for t in select(ts, batch_size=bs):
            if t is one:
                continue
            calls = t.extra["calls"]
            s = f"batch {bs}: {t.extra['variant']} ({t.backend}): " + compare(
                "one compiled call per epoch", one.epoch_s, "this", t.epoch_s)
            if t.backend == "numba" and calls > 1:
                per_call = (t.median - one.median) / (calls - 1)
                step = one.median / -(-one.rows // bs)
                s += (f"; about {fmt_s(max(per_call, 0))} extra per call, against "
                      f"{fmt_s(step)} of work per step")
            words.append(s + ".")
    words.append("Where it stops paying: the overhead per call is fixed, so it matters in "
                 "proportion to how little work a step does. Once a call runs many steps "
                 "(as `fit` does, a chunk of steps per call) the remaining overhead is "
                 "spread over the chunk; compare the one-call and chunked rows above.")
    return _with_bullets(lines, words)


def _section_sparsity(study):
    ts = study["results"]["sparsity"]
    sp = study["sparsity"]
    lines = ["## 5. Dense vs zero-skipping layer 1", "",
             f"Batch 128, float32, SGD. ![sparsity]({PLOTS['sparsity']})", "",
             md_table(["network", "layer-1 input"] + TIMING_HEADER[1:],
                    [[t.extra["arch"], t.extra["mode"]] + timing_row(t, "")[1:] for t in ts]),
             ""]
    words = []
    if sp:
        words.append(f"{100 * sp['nonzero_fraction']:.1f}% of the training pixels are nonzero, "
                     f"so layer 1 (its forward pass and its dW) has "
                     f"{100 * (1 - sp['nonzero_fraction']):.0f}% less work when zeros are "
                     f"skipped. The CSR copy takes {fmt_s(sp['prepare_csr_s'])} to build, once, "
                     f"and {sp['csr_mb']:.0f} MB (the uint8 images: {sp['dense_mb']:.0f} MB).")
    for arch in dict.fromkeys(t.extra["arch"] for t in ts):
        csr = select_one(ts, name=f"numba {arch} csr")
        dense = select_one(ts, name=f"numba {arch} dense")
        if not (csr and dense):
            continue
        s = f"**{arch}**: " + compare("skipping zeros", csr.epoch_s, "dense", dense.epoch_s)
        saved = dense.epoch_s - csr.epoch_s
        if saved > 0 and sp and csr.epoch_s * SAME < dense.epoch_s:
            s += (f"; the CSR copy pays for itself after "
                  f"{sp['prepare_csr_s'] / saved:.2g} epochs")
        blas = select_one(ts, name=f"numpy {arch} BLAS")
        if blas:
            s += "; against NumPy's dense BLAS: " + compare(
                "numba (CSR)", csr.epoch_s, "NumPy", blas.epoch_s)
        words.append(s + ".")
    words.append("When it stops paying: skipping zeros saves layer-1 work only; the wider "
                 "the hidden layer, the more of an epoch is layer 1 and the more it saves, "
                 "while indirect (gathered) loads cost more per multiply than a dense, "
                 "vectorized row, so on denser inputs the dense path wins.")
    return _with_bullets(lines, words)


def _section_gflops(study):
    res = study["results"]
    every = [t for key in ("batch_size", "threads", "dtype", "python_overhead", "sparsity")
             for t in res[key]]
    lines = ["## 6. Achieved GFLOP/s and % of the GEMM roof", "",
             "Dense-equivalent training FLOPs per second of every timing above, as a "
             f"percentage of the measured roof of its dtype. ![gflops]({PLOTS['gflops']})", ""]
    if not every:
        return lines + ["Nothing was timed.", ""]
    rows = []
    for key in ("batch_size", "threads", "dtype", "python_overhead", "sparsity"):
        ts = res[key]
        if ts:
            best = max(ts, key=lambda t: t.gflops)
            worst = min(ts, key=lambda t: t.gflops)
            rows.append([key, best.name, f"{best.gflops:.2f}", f"{best.pct_roof:.1f}",
                         worst.name, f"{worst.gflops:.2f}", f"{worst.pct_roof:.1f}"])
    lines += [md_table(["sweep", "best", "GFLOP/s", "% roof", "worst", "GFLOP/s", "% roof"],
                     rows), ""]
    best = max(every, key=lambda t: t.pct_roof)
    worst = min(every, key=lambda t: t.pct_roof)
    words = [f"The best run, {best.name} ({best.sweep}), reaches {best.gflops:.1f} GFLOP/s, "
             f"{best.pct_roof:.1f}% of the {best.dtype} roof; the worst, {worst.name}, "
             f"{worst.gflops:.2f} GFLOP/s ({worst.pct_roof:.2f}%)."]
    if best.pct_roof < 50:
        words.append("Even the best stays below half the roof: these networks are small "
                     "(a 784x128 layer-1 matmul per batch), so memory traffic, per-step "
                     "updates and synchronization, not arithmetic, set the pace.")
    else:
        words.append("The best run comes within a factor of two of the roof: there the "
                     "arithmetic, not overheads, sets the pace.")
    return _with_bullets(lines, words)


def _section_recipes(study):
    rec = study["results"]["recipes"]
    plan = study["plan"]
    lines = ["## 7. Test accuracy vs training time", "",
             "Each recipe (`fastmnist.recipes.get(name)`) trained once with the numba backend "
             "after a warm-up fit on a slice (so no compilation is charged); test accuracy "
             "after every epoch; training seconds exclude the evaluation. "
             f"![accuracy vs time]({PLOTS['accuracy']})", ""]
    if plan.quick:
        lines += ["`--quick` cuts the epochs (" + ", ".join(
            f"{k}: {v}" for k, v in plan.recipe_epochs.items()) + "): the accuracies are "
            "not the recipes' own.", ""]
    rows = []
    for name, r in rec.items():
        cum = np.cumsum(r["epoch_seconds"])
        acc = np.asarray(r["val_accuracy"])
        hit = np.flatnonzero(acc >= 0.98)
        rows.append([name, r["model"].replace("|", "/"), r["epochs"], f"{cum[-1]:.2f}",
                     f"{r['wall_s']:.2f}", f"{100 * acc[-1]:.2f}", f"{100 * acc.max():.2f}",
                     f"{cum[hit[0]]:.2f} (epoch {hit[0] + 1})" if len(hit) else "never"])
    lines += [md_table(["recipe", "model", "epochs", "training s", "wall s (with eval)",
                      "final test %", "best test %", "s to 98%"], rows), ""]
    words = []
    reach = {name: float(np.cumsum(r["epoch_seconds"])[np.argmax(np.asarray(
        r["val_accuracy"]) >= 0.98)]) for name, r in rec.items()
        if max(r["val_accuracy"]) >= 0.98}
    if reach:
        first = min(reach, key=reach.get)
        words.append(f"First to 98% test accuracy: **{first}** after {fmt_s(reach[first])} of "
                     "training.")
    else:
        words.append("No recipe reached 98% test accuracy in this run.")
    if "seed" in rec and len(rec) > 1:
        seed_acc = rec["seed"]["val_accuracy"][-1]
        seed_s = sum(rec["seed"]["epoch_seconds"])
        for name, r in rec.items():
            if name == "seed":
                continue
            acc, sec = r["val_accuracy"][-1], sum(r["epoch_seconds"])
            words.append(f"{name} vs seed: {100 * acc:.2f}% vs {100 * seed_acc:.2f}% test "
                         f"accuracy in {fmt_s(sec)} vs {fmt_s(seed_s)} of training ("
                         + (f"{fmt_x(seed_s / sec)} less time" if sec < seed_s
                            else f"{fmt_x(sec / seed_s)} more time") + ").")
    words.append("What this shows: the time to an accuracy depends on the recipe (network "
                 "width, optimizer, schedule, batch size) as much as on the kernels; a fast "
                 "epoch of full-batch gradient descent does one update where batch 128 does "
                 "hundreds.")
    return _with_bullets(lines, words)


def _section_frontier(study):
    rec = study["results"]["recipes"]
    lines = ["## 8. The accuracy-time frontier", "",
             "The runs of section 7 as points (training seconds, final test accuracy). A run is "
             "on the frontier when no other run is at least as accurate in at most its time. "
             "A trick switched on alone over a recipe (`fast98+shift1`: fast98 with "
             "`shift=1`; `+smooth0.1`: `label_smoothing=0.1`; `+maxnorm3`: `max_norm=3`; "
             "`+dropout0.2`: `dropout=0.2`; `+ema0.999`: `ema=0.999`; `+affine`: "
             "`affine=(10, 0.1, 10)`) is compared with that "
             "recipe's own run. "
             f"![frontier]({PLOTS['frontier']})", ""]
    if study["plan"].quick:
        lines += ["`--quick` cuts the epochs: the points are not the recipes' own.", ""]
    pts = frontier.points(rec)
    lines += [md_table(["run", "training s", "test %", "on the frontier"],
                       [[n, f"{s:.2f}", f"{100 * a:.2f}", "yes" if on else "no"]
                        for n, s, a, on in pts]), ""]
    gains = frontier.trick_gains(rec)
    if gains:
        lines += [md_table(["trick", "over", "points gained", "seconds added",
                            "points per second"],
                           [[", ".join(f"{k}={v}" for k, v in trick.items()), base,
                             f"{gain:+.2f}", f"{cost:+.2f}",
                             "no measurable cost" if per is None else f"{per:+.3f}"]
                            for _, base, trick, gain, cost, per in gains]), ""]
    words = []
    front = [p for p in pts if p[3]]
    words.append("On the frontier, fastest first: " + ", ".join(
        f"{n} ({100 * a:.2f}% in {fmt_s(s)})" for n, s, a, _ in front) + ".")
    top = max(pts, key=lambda p: p[2])
    words.append(f"The most accurate run is {top[0]}: {100 * top[2]:.2f}% after "
                 f"{fmt_s(top[1])} of training.")
    for mark in (0.98, 0.985, 0.988):
        reach = [p for p in pts if p[2] >= mark]
        if reach:
            first = min(reach, key=lambda p: p[1])
            words.append(f"Fastest to {100 * mark:g}%: {first[0]} ({fmt_s(first[1])}).")
        else:
            words.append(f"No run reached {100 * mark:g}%.")
    for _, base, trick, gain, cost, per in gains:
        what = ", ".join(f"{k}={v}" for k, v in trick.items())
        words.append(f"{what} over {base}: {gain:+.2f} points of test accuracy for "
                     + (f"{cost:+.2f} s of training ({per:+.3f} points per second)."
                        if per is not None else f"no measurable added time ({cost:+.2f} s, "
                        f"within {100 * frontier.NOISE:.0f}% of the recipe's own: one run's "
                        "noise)."))
    return _with_bullets(lines, words)


def write_markdown(study, out_dir):
    """report.md: machine, settings, roof, and per sweep a table plus derived sentences."""
    plan = study["plan"]
    lines = ["# fastmnist trade-off study", "",
             "What each optimization of fastmnist buys and when it stops paying, measured on "
             "this machine by `fastmnist study" + (" --quick" if plan.quick else "") + "` in "
             f"{study['total_s']:.0f} s (" + ", ".join(
                 f"{k} {v:.0f} s" for k, v in study["seconds"].items()) + "). "
             "Numbers on a shared machine are indicative; ratios measured within one sweep "
             "are the robust part.", ""]
    for section in (_section_machine, _section_batch, _section_threads, _section_dtype,
                    _section_overhead, _section_sparsity, _section_gflops, _section_recipes,
                    _section_frontier):
        lines += section(study)
    lines += ["## Files", "", "- `study.json`: every timing (all runs, not only medians) and "
              "the recipes' histories."] + [f"- `{p}`" for p in PLOTS.values()] + [""]
    path = os.path.join(out_dir, "report.md")
    with atomic_write(path, binary=False) as f:
        f.write("\n".join(lines))
    return path
