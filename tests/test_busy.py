"""The busy-neighbour benchmark: the neighbour really runs and is gone after; the report has
every (recipe, phase, threads) cell."""

import numpy as np
from conftest import learnable

import fastmnist as fm
from fastmnist.busy import busy_neighbour, busy_report


def test_neighbour_spins_and_is_killed():
    with busy_neighbour() as procs:
        assert len(procs) == 1 and procs[0].poll() is None  # running
    assert procs[0].poll() is not None  # gone


def test_report_covers_every_cell():
    X, y = learnable(256)

    def tiny():
        return fm.MLP(hidden=(8,), seed=0), dict(epochs=1, batch_size=32, lr=0.05)

    said = []
    medians, lines = busy_report(X, y, recipes=[("tiny", tiny)], rounds=1,
                                 log=lambda *a, **k: said.append(a))
    assert set(medians) == {("tiny", p, t) for p in ("quiet", "busy") for t in (None, 1)}
    assert all(np.isfinite(v) and v > 0 for v in medians.values())
    assert len(lines) == 3 and lines[1].startswith("tiny") and lines[2].split()[1] == "1"
    assert len(said) == 2  # one line per phase


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
