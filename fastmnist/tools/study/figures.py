"""The study's PNG plots. matplotlib (the ``plot`` extra) is imported only inside the drawing
functions; figures are drawn on the Agg canvas without pyplot and written atomically."""

import os

import numpy as np

from .timing import select, select_one

PLOTS = {
    "batch_size": "batch_size.png",
    "threads": "threads.png",
    "dtype": "dtype.png",
    "python_overhead": "python_overhead.png",
    "sparsity": "sparsity.png",
    "gflops": "gflops.png",
    "accuracy": "accuracy_vs_time.png",
    "frontier": "frontier.png",
}

COLORS = {"numpy": "tab:blue", "numba": "tab:orange", "torch": "tab:green"}


def write_plots(study, out_dir):
    """Every PNG of the study; returns their paths."""
    out = []
    for key, fn in (("batch_size", _plot_batch), ("threads", _plot_threads),
                    ("dtype", _plot_dtype), ("python_overhead", _plot_overhead),
                    ("sparsity", _plot_sparsity), ("gflops", _plot_gflops),
                    ("accuracy", _plot_recipes), ("frontier", _plot_frontier)):
        path = os.path.join(out_dir, PLOTS[key])
        fn(study, path)
        out.append(path)
    return out


def _figure(w, h):
    from ...integrations.evaluation_plots import figure
    return figure(w, h)


def _two_panels(title):
    """A wide figure titled `title` with two side-by-side axes: (fig, left, right)."""
    fig = _figure(11.0, 4.6)
    fig.suptitle(title)
    return fig, fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)


def _save(fig, path):
    from ...integrations.evaluation_plots import save_png as save
    return save(fig, path)


def _empty(ax, text):
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, transform=ax.transAxes)


def _plot_batch(study, path):
    ts = study["results"]["batch_size"]
    roof = study["roofs"]["float32"]
    fig, ax1, ax2 = _two_panels(
        "Epoch time and throughput vs batch size (784-128-10, float32, SGD)")
    for b in ("numpy", "numba", "torch"):
        mine = sorted(select(ts, backend=b), key=lambda t: t.batch_size)
        if not mine:
            continue
        bss = [t.batch_size for t in mine]
        ax1.plot(bss, [t.epoch_s for t in mine], "o-", color=COLORS[b], label=b)
        ax2.plot(bss, [t.gflops for t in mine], "o-", color=COLORS[b], label=b)
        for t in mine:
            if t.fraction:
                ax1.plot([t.batch_size], [t.epoch_s], "o", mfc="white", color=COLORS[b])
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (images per step, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax1.set_ylabel("seconds per epoch (log scale)")
    ax1.set_title("Epoch time (hollow: scaled from part of an epoch)", fontsize=10)
    ax2.set_ylabel("achieved GFLOP/s, dense-equivalent (log scale)")
    ax2.set_title(f"Throughput; right axis: % of the {roof:.0f} GFLOP/s GEMM roof", fontsize=10)
    sec = ax2.secondary_yaxis("right", functions=(lambda g: 100 * g / roof,
                                                  lambda p: p * roof / 100))
    sec.set_ylabel("% of float32 GEMM roof")
    return _save(fig, path)


def _plot_threads(study, path):
    ts = study["results"]["threads"]
    fig, ax1, ax2 = _two_panels("Threads: epoch time and speedup (784-128-10, float32, SGD)")
    if not ts:
        _empty(ax1, "one usable core: not measured")
        _empty(ax2, "")
        return _save(fig, path)
    counts = study["thread_counts"]
    top = counts[-1]
    styles = {1: ":", top: "-"}
    for b in ("numpy", "numba", "torch"):
        for c in counts:
            mine = sorted(select(ts, backend=b, threads=c), key=lambda t: t.batch_size)
            if mine:
                ax1.plot([t.batch_size for t in mine], [t.epoch_s for t in mine], "o",
                         ls=styles.get(c, "--"), color=COLORS[b], label=f"{b}, {c} thread"
                         + ("s" if c > 1 else ""))
        speed = []
        for bs in sorted({t.batch_size for t in select(ts, backend=b)}):
            one = select_one(ts, backend=b, batch_size=bs, threads=1)
            many = select_one(ts, backend=b, batch_size=bs, threads=top)
            if one and many:
                speed.append((bs, one.epoch_s / many.epoch_s))
        if speed:
            ax2.plot(*zip(*speed), "o-", color=COLORS[b], label=b)
    ax2.axhline(1.0, color="gray", lw=1, ls="--", label="no gain")
    ax2.axhline(float(top), color="black", lw=1, ls=":", label=f"perfect ({top}x)")
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds per epoch (log scale)")
    ax1.set_title("Epoch time", fontsize=10)
    ax2.set_ylabel(f"speedup, 1 thread time / {top} threads time (x)")
    ax2.set_title(f"Speedup of {top} threads over 1", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("batch size (images per step, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _bars(ax, groups, series, values, colors=None, fmt="{:.2f}", log=False):
    """Grouped bars: values[(group, series)] -> height; missing pairs are skipped."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, s in enumerate(series):
        hs = [values.get((g, s), np.nan) for g in groups]
        bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, hs, width, label=s,
                      color=(colors or {}).get(s))
        ax.bar_label(bars, labels=["" if np.isnan(h) else fmt.format(h) for h in hs],
                     fontsize=7, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _plot_dtype(study, path):
    ts = study["results"]["dtype"]
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(
        f"{t.backend}\n{'-'.join(map(str, t.sizes))}, batch {t.batch_size}" for t in ts))
    values = {(f"{t.backend}\n{'-'.join(map(str, t.sizes))}, batch {t.batch_size}", t.dtype):
              t.epoch_s for t in ts}
    _bars(ax, groups, ["float32", "float64"], values,
          {"float32": "tab:orange", "float64": "tab:purple"}, fmt="{:.3f} s")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("float32 vs float64: epoch time (SGD; lower is better)")
    return _save(fig, path)


def _plot_overhead(study, path):
    ts = study["results"]["python_overhead"]
    fig = _figure(10.0, 5.0)
    ax = fig.add_subplot()
    groups = [f"batch {bs}" for bs in sorted({t.batch_size for t in ts})]
    series = list(dict.fromkeys(f"{t.extra['variant']} ({t.backend})" for t in ts))
    values = {(f"batch {t.batch_size}", f"{t.extra['variant']} ({t.backend})"): t.epoch_s
              for t in ts}
    palette = ["tab:orange", "gold", "tab:red", "tab:brown", "tab:blue"]
    _bars(ax, groups, series, values, dict(zip(series, palette)), fmt="{:.2f}", log=True)
    ax.set_ylabel("seconds per epoch (log scale)")
    ax.set_title("The cost of Python in the loop (784-128-10, float32, SGD; lower is better)")
    return _save(fig, path)


def _plot_sparsity(study, path):
    ts = study["results"]["sparsity"]
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(t.extra["arch"] for t in ts))
    series = list(dict.fromkeys(t.extra["mode"] for t in ts))
    values = {(t.extra["arch"], t.extra["mode"]): t.epoch_s for t in ts}
    palette = ["tab:orange", "tab:gray", "tab:olive", "tab:blue"]
    _bars(ax, groups, series, values, dict(zip(series, palette)), fmt="{:.3f} s")
    ax.set_ylabel("seconds per epoch")
    ax.set_xlabel("network")
    ax.set_title("Layer 1: skipping zero pixels vs dense (batch 128, float32; lower is better)")
    return _save(fig, path)


def _plot_gflops(study, path):
    res = study["results"]
    keys = [k for k in ("batch_size", "threads", "dtype", "python_overhead", "sparsity")
            if res[k]]
    titles = {"batch_size": "1. batch size", "threads": "2. threads", "dtype": "3. dtype",
              "python_overhead": "4. Python in the loop", "sparsity": "5. layer-1 sparsity"}
    n_bars = sum(len(res[k]) for k in keys)
    fig = _figure(11.0, max(4.0, 1.2 + 0.19 * n_bars + 0.5 * len(keys)))
    fig.suptitle("Achieved GFLOP/s (dense-equivalent) of every timed configuration; "
                 "labels: % of the GEMM roof")
    if not keys:
        _empty(fig.add_subplot(), "nothing timed")
        return _save(fig, path)
    grid = fig.add_gridspec(len(keys), 1, height_ratios=[len(res[k]) + 1.5 for k in keys])
    top = max(t.gflops for k in keys for t in res[k])
    for i, k in enumerate(keys):
        ax = fig.add_subplot(grid[i])
        ts = res[k]
        y = np.arange(len(ts))
        bars = ax.barh(y, [t.gflops for t in ts], color=[COLORS[t.backend] for t in ts])
        ax.bar_label(bars, labels=[f"{t.pct_roof:.1f}%" for t in ts], fontsize=7, padding=2)
        ax.set_yticks(y)
        ax.set_yticklabels([t.name + (f" {t.dtype}" if k == "dtype" else "") for t in ts],
                           fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.18)
        ax.set_title(titles[k], fontsize=9, loc="left")
        ax.grid(True, axis="x", alpha=0.3)
        if i == len(keys) - 1:
            ax.set_xlabel("achieved GFLOP/s (dense-equivalent training FLOPs / second)")
    return _save(fig, path)


def _plot_recipes(study, path):
    rec = study["results"]["recipes"]
    fig, ax1, ax2 = _two_panels("Test accuracy vs training time of the recipes (numba backend)")
    colors = {"seed": "tab:blue", "default": "tab:orange", "fast98": "tab:green",
              "fast985": "tab:red", "best": "tab:purple", "fast98+shift1": "tab:olive",
              "fast98+smooth0.1": "tab:cyan", "fast98+maxnorm3": "tab:brown",
              "fast98+dropout0.2": "tab:pink", "fast98+ema0.999": "tab:gray",
              "fast98+affine": "black"}
    hi = 0.0
    for name, r in rec.items():
        cum = np.cumsum(r["epoch_seconds"])
        acc = 100 * np.asarray(r["val_accuracy"])
        hi = max(hi, float(acc.max()))
        marker = "o" if len(cum) <= 30 else None
        for ax in (ax1, ax2):
            ax.plot(cum, acc, marker=marker, ms=4, color=colors.get(name), label=name)
    for ax in (ax1, ax2):
        ax.axhline(98.0, color="gray", lw=1, ls="--", label="98%")
        ax.set_xscale("log")
        ax.set_xlabel("cumulative training seconds (log scale; evaluation excluded)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    ax1.set_title("Whole run", fontsize=10)
    ax1.set_ylim(0, 100)
    lo = max(0.0, min(95.0, hi - 3.0))
    ax2.set_ylim(lo, max(hi + 0.5, 98.5))
    ax2.set_title(f"Zoom: {lo:.0f}% and up", fontsize=10)
    return _save(fig, path)


def _plot_frontier(study, path):
    """Final test accuracy against training seconds of every run of sweep 7; the Pareto
    front (``frontier.points``) joined by a step line. A run more than two points below the
    median (the notebook's recipe) is drawn on the axis as a triangle, its accuracy in its
    label; labels alternate above and below their points."""
    from . import frontier
    pts = frontier.points(study["results"]["recipes"])
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    accs = [100 * a for _, _, a, _ in pts]
    median = sorted(accs)[len(accs) // 2]
    lo = min(a for a in accs if a >= median - 2.0) - 0.3
    for i, (name, s, a, on) in enumerate(pts):
        below = 100 * a < lo
        y = lo if below else 100 * a
        ax.scatter([s], [y], s=36, marker="v" if below else "o", zorder=3,
                   color="tab:red" if on else "tab:gray")
        ax.annotate(f"{name} ({100 * a:.1f}%)" if below else name, (s, y),
                    textcoords="offset points", xytext=(5, 5 if below or i % 2 else -11),
                    fontsize=8)
    front = [(s, max(lo, 100 * a)) for _, s, a, on in pts if on]
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:red",
            lw=1.2, label="frontier (no run more accurate in less time)")
    ax.set_ylim(lo - 0.1, max(accs) + 0.3)
    ax.set_xscale("log")
    ax.set_xlabel("training seconds (log scale; evaluation excluded)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title("The accuracy-time frontier of the recipes (numba backend)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
