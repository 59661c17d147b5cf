"""A busy neighbour: fit's wall time on a quiet machine against one with a core taken.

On a laptop with a browser open or a desktop running a build, another process keeps a core
busy. :func:`busy_report` times the recipes' ``fit`` (as users call it, preparation included)
with the default thread choice and with ``threads=1``, first quiet, then while a neighbour
process it starts spins on a core, interleaved round by round, and reports the medians.
``fastmnist bench --busy`` prints it.
"""

import contextlib
import subprocess
import sys
import time

import numpy as np

#: seconds the neighbour spins before and the machine rests after each timed phase
SETTLE = 0.5


@contextlib.contextmanager
def busy_neighbour(n=1):
    """Run the block while `n` other processes each spin on a core; they are killed after."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
             for _ in range(n)]
    try:
        time.sleep(SETTLE)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        time.sleep(SETTLE)


def busy_report(X, y, recipes=("default", "fast98"), rounds=3, log=print):
    """Median fit seconds per (recipe, quiet or busy, threads None or 1), and the lines.

    Parameters
    ----------
    X, y : training images (n, 784) and labels (n,)
    recipes : names of :mod:`fastmnist.recipes`, or ``(name, factory)`` pairs where
        ``factory()`` returns ``(model, fit_kwargs)``
    rounds : int
        Quiet and busy phases, alternated; the medians are over the rounds. Each round runs
        the (recipe, threads) cells in the order of the last, rotated by one.

    Returns
    -------
    medians : dict (recipe, "quiet" or "busy", threads) -> seconds
    lines : list of str, the table printed by ``fastmnist bench --busy``
    """
    from . import recipes as _recipes

    makers = [(r, lambda r=r: _recipes.get(r)) if isinstance(r, str) else r for r in recipes]

    def fit(make, threads):
        model, kw = make()
        t0 = time.perf_counter()
        model.fit(X, y, progress=False, threads=threads, **kw)
        return time.perf_counter() - t0

    for _, make in makers:  # compile, load the caches
        fit(make, None)
    runs = [(name, make, threads) for name, make in makers for threads in (None, 1)]
    times = {}
    for r in range(rounds):
        # each round starts the list one run further, so that no cell is always the first
        # after the neighbour starts (it had been the default recipe's governed fit)
        order = runs[r % len(runs):] + runs[:r % len(runs)]
        for phase in ("quiet", "busy"):
            log(f"round {r + 1}/{rounds}: {phase}", flush=True)
            ctx = busy_neighbour() if phase == "busy" else contextlib.nullcontext()
            with ctx:
                for name, make, threads in order:
                    times.setdefault((name, phase, threads), []).append(fit(make, threads))
    medians = {k: float(np.median(v)) for k, v in times.items()}
    lines = [f"{'recipe':<10} {'threads':<8} {'quiet s':>8} {'busy s':>8} {'busy/quiet':>10}"]
    for name, _ in makers:
        for threads in (None, 1):
            q, b = medians[(name, "quiet", threads)], medians[(name, "busy", threads)]
            label = "default" if threads is None else str(threads)
            lines.append(f"{name:<10} {label:<8} {q:8.2f} {b:8.2f} {b / q:10.2f}")
    return medians, lines
