"""The busy-neighbour benchmark: the neighbour really runs and is gone after; the report has
every (recipe, phase, threads) cell."""

import os

import numpy as np
import pytest
from conftest import learnable

import fastmnist as fm
from fastmnist.backends._jit import n_threads
from fastmnist.busy import busy_neighbour, busy_report, host_rate


def test_neighbour_spins_and_is_killed():
    with busy_neighbour() as procs:
        assert len(procs) == 1 and procs[0].poll() is None  # running
    assert procs[0].poll() is not None  # gone


@pytest.mark.skipif(not hasattr(os, "getsid"), reason="sessions are POSIX")
@pytest.mark.parametrize("own", [False, True])
def test_neighbour_in_its_own_session_or_this_one(own):
    with busy_neighbour(own_session=own) as procs:
        assert (os.getsid(procs[0].pid) != os.getsid(0)) == own


def test_report_covers_every_cell():
    X, y = learnable(256)

    def tiny():
        return fm.MLP(hidden=(8,), seed=0), dict(epochs=1, batch_size=32, lr=0.05)

    said = []
    medians, lines = busy_report(X, y, recipes=[("tiny", tiny)], rounds=1,
                                 log=lambda *a, **k: said.append(a))
    most = n_threads()
    assert set(medians) == ({("tiny", p, t) for p in ("quiet", "busy") for t in (None, 1)}
                            | {("host", p, k) for p in ("quiet", "busy", "other")
                               for k in (1, most)})
    assert all(np.isfinite(v) and v > 0 for v in medians.values())
    assert len(lines) == 5 and lines[1].startswith("tiny") and lines[2].split()[1] == "1"
    assert lines[3].startswith("host:") and "neighbour in this session" in lines[3]
    other = medians[("host", "other", 1)] / medians[("host", "other", most)]
    assert lines[4] == f"host: {other:.2f}x with the neighbour in its own session"
    # the floor: the fit's quiet speed-up on all threads over the host's busy rate
    busy_rate = medians[("host", "busy", 1)] / medians[("host", "busy", most)]
    speed_up = medians[("tiny", "quiet", 1)] / medians[("tiny", "quiet", None)]
    assert float(lines[1].split()[-1]) == pytest.approx(speed_up / busy_rate, abs=0.006)
    assert len(lines[2].split()) == 5  # no floor for threads=1
    assert len(said) == 2  # one line per phase


def test_host_rate_is_seconds_per_share():
    """host_rate gives the seconds of one thread's share: twice the steps take about twice
    as long; k threads do at most k threads' work."""
    one = min(host_rate(1, n=2_000_000) for _ in range(3))
    twice = min(host_rate(1, n=4_000_000) for _ in range(3))
    assert 1.6 < twice / one < 2.5
    k = n_threads()
    each = min(host_rate(k, n=2_000_000) for _ in range(3))
    assert one / each <= k * 1.3  # (timer noise)


def test_each_round_starts_with_another_cell():
    """The first fit after the neighbour starts is not always the same cell's."""
    X, y = learnable(64)
    calls = []

    def maker(name):
        def make():
            calls.append(name)
            return fm.MLP(hidden=(4,), seed=0), dict(epochs=1, batch_size=32, lr=0.05)
        return name, make

    busy_report(X, y, recipes=[maker("a"), maker("b")], rounds=4, log=lambda *a, **k: None)
    rounds = [calls[2 + 8 * r:2 + 8 * (r + 1)] for r in range(4)]  # after the two warm-ups
    assert [r[4] for r in rounds] == ["a", "a", "b", "b"]  # each busy phase's first fit
    assert all(sorted(r[:4]) == ["a", "a", "b", "b"] for r in rounds)
