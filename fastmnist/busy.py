"""A busy neighbour: fit's wall time on a quiet machine against one with a core taken.

On a laptop with a browser open or a desktop running a build, another process keeps a core
busy. :func:`busy_report` times the recipes' ``fit`` (as users call it, preparation included)
with the default thread choice and with ``threads=1``, first quiet, then while a neighbour
process it starts spins on a core, interleaved round by round, and reports the medians.
``fastmnist bench --busy`` prints it.

It also measures what the machine gives threads that never wait for each other
(:func:`host_rate`): each thread its own chain of integer steps, no barrier, for about 0.2 s.
With the neighbour, the operating system shares the cores between it and every thread, so
all threads together get more CPU time than one thread alone, but not much more (1.13-1.26x
on a 2-vCPU AMD EPYC, against 1.99x quiet). A fit whose threads meet at every step waits
whenever one of them is descheduled, and gets less. So a fit that runs s times faster on all
threads than on one, quiet, can hardly take less than s / (that busy rate) of its quiet time
busy, however its work is shared out: the report's "floor" (a bound on scheduling, not on
everything: a fit's threads may also share caches and floating-point units that the chains
do not use).

Where the neighbour lives matters. Linux shares the cores between sessions before threads
(autogroups, on in most distributions; cgroups with the CPU controller do the same): a
neighbour started from this session (``own_session=False``, the report's default) competes
thread against thread, but one in a session of its own (a browser, a build in another
terminal) gets half the machine, and this process's threads share the other half, together
about one thread's work (1.04x on the 2-vCPU AMD EPYC). There no fit on all threads can be
faster than on one, so the floor is the quiet speed-up itself. The report measures the host's
rate both ways.
"""

import contextlib
import subprocess
import sys
import time

import numpy as np

from .backends._jit import n_threads, pjit, prange
from .backends._jit import threads as numba_threads

#: seconds the neighbour spins before and the machine rests after each timed phase
SETTLE = 0.5


@contextlib.contextmanager
def busy_neighbour(n=1, own_session=False):
    """Run the block while `n` other processes each spin on a core; they are killed after.
    own_session: start them in a session of their own (``setsid``, POSIX), as a process of
    another terminal or of the desktop would be, not as this one's children."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              start_new_session=own_session)
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


@pjit
def _own_chains(k, n, out):
    """k threads, each n steps of its own xorshift chain (out[t]: its end), none waiting for
    another until all are done. Each step waits on the last (about 6 cycles), so the chain
    measures the CPU time a thread gets, not the floating-point units or memory it shares."""
    for t in prange(k):
        x = np.uint64(88172645463325252 + t)
        for _ in range(n):
            x ^= x << np.uint64(13)
            x ^= x >> np.uint64(7)
            x ^= x << np.uint64(17)
        out[t] = x


def host_rate(k, n=150_000_000):
    """Seconds per thread's share of work when k threads each run their own chain
    (``_own_chains``, n steps a share: about 0.2 s, long against the operating system's time
    slices, so that a share's time is its thread's share of the cores and not the luck of one
    slice); one thread's time over this is how many threads' worth of work k threads get
    done."""
    out = np.zeros(k, np.uint64)
    with numba_threads(k):
        _own_chains(k, 1, out)
        t0 = time.perf_counter()
        _own_chains(k, n, out)
        return (time.perf_counter() - t0) / k


def busy_report(X, y, recipes=("default", "fast98"), rounds=3, log=print, own_session=False):
    """Median fit seconds per (recipe, quiet or busy, threads None or 1), and the lines.

    Parameters
    ----------
    X, y : training images (n, 784) and labels (n,)
    recipes : names of :mod:`fastmnist.recipes`, or ``(name, factory)`` pairs where
        ``factory()`` returns ``(model, fit_kwargs)``
    rounds : int
        Quiet and busy phases, alternated; the medians are over the rounds. Each round runs
        the (recipe, threads) cells in the order of the last, rotated by one.
    own_session : bool
        Whether the fits' neighbour runs in a session of its own (:func:`busy_neighbour`).
        Either way the host's rate is also measured with a neighbour of the other kind.

    Returns
    -------
    medians : dict (recipe, "quiet" or "busy", threads) -> seconds; also ("host", phase, k)
        -> :func:`host_rate` for k = 1 and all threads, phase "quiet", "busy" (the fits'
        neighbour) or "other" (a neighbour in the other kind of session)
    lines : list of str, the table printed by ``fastmnist bench --busy``: each recipe's
        quiet and busy medians, their ratio, and for the default threads the floor of that
        ratio (the recipe's quiet speed-up on all threads over the host's busy rate); then
        the host's rates
    """
    from . import recipes as _recipes

    makers = [(r, lambda r=r: _recipes.get(r)) if isinstance(r, str) else r for r in recipes]

    def fit(make, threads):
        model, kw = make()
        t0 = time.perf_counter()
        model.fit(X, y, progress=False, threads=threads, **kw)
        return time.perf_counter() - t0

    most = n_threads()

    def host(phase):
        for k in sorted({1, most}):
            times.setdefault(("host", phase, k), []).append(host_rate(k))

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
            ctx = (busy_neighbour(own_session=own_session) if phase == "busy"
                   else contextlib.nullcontext())
            with ctx:
                for name, make, k in order:
                    times.setdefault((name, phase, k), []).append(fit(make, k))
                host(phase)
        with busy_neighbour(own_session=not own_session):
            host("other")
    medians = {k: float(np.median(v)) for k, v in times.items()}
    rate = {p: medians[("host", p, 1)] / medians[("host", p, most)]
            for p in ("quiet", "busy", "other")}
    lines = [f"{'recipe':<10} {'threads':<8} {'quiet s':>8} {'busy s':>8} {'busy/quiet':>10} "
             f"{'floor':>6}"]
    for name, _ in makers:
        for k in (None, 1):
            q, b = medians[(name, "quiet", k)], medians[(name, "busy", k)]
            label = "default" if k is None else str(k)
            speed_up = medians[(name, "quiet", 1)] / q
            floor = f"{speed_up / rate['busy']:6.2f}" if k is None else ""
            lines.append(f"{name:<10} {label:<8} {q:8.2f} {b:8.2f} {b / q:10.2f} {floor}")
    where = ("its own session", "this session") if own_session else ("this session",
                                                                      "its own session")
    lines.append(f"host: {most} threads that never wait for each other do {rate['quiet']:.2f}x "
                 f"one thread's work quiet, {rate['busy']:.2f}x busy (neighbour in {where[0]}); "
                 f"floor: the recipe's quiet speed-up over {rate['busy']:.2f}")
    lines.append(f"host: {rate['other']:.2f}x with the neighbour in {where[1]}")
    return medians, lines
