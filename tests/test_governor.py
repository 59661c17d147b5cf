"""The thread governor: which count runs each chunk, from (simulated) step times."""

import os
import subprocess
import sys
import time

import pytest

from fastmnist.governor import (
    CHUNK_GROWTH,
    CHUNK_SECONDS,
    PROBE_STEPS,
    RETRY_START,
    Governor,
    _others_running,
    chunk_steps,
)

CHUNK = 128


def simulate(per_step, chunks_of_steps=4000, most=2, sample=lambda: None, others=None):
    """Run a governor over `chunks_of_steps` steps where per_step(threads, step) is the time of
    a step, and `others` other processes' threads are runnable at the start (None: unknown);
    returns (each step's time, steps run on each count, the governor)."""
    gov = Governor(most, CHUNK, sample, others_now=lambda: others)
    step, times, steps_on = 0, [], {1: 0, most: 0}
    while step < chunks_of_steps:
        threads, n = gov.plan()
        n = min(n, chunks_of_steps - step)
        times += [per_step(threads, step + i) for i in range(n)]
        gov.record(threads, sum(times[-n:]), n)
        steps_on[threads] += n
        step += n
    return times, steps_on, gov


def quiet(threads, step):
    return 1.0 if threads == 2 else 1.4


def busy(threads, step):
    return 4.0 if threads == 2 else 1.4


def test_quiet_machine_runs_on_all_threads():
    times, steps_on, gov = simulate(quiet)
    assert gov.current == 2
    assert steps_on[1] <= 5 * PROBE_STEPS  # warm-up, the first probe and a few later ones
    assert sum(times) <= 1.02 * 4000 * 1.0


def test_busy_core_runs_on_one_thread():
    times, steps_on, gov = simulate(busy)
    assert gov.current == 1
    assert steps_on[2] <= 5 * PROBE_STEPS
    assert sum(times) <= 1.1 * 4000 * 1.4  # within 10% of knowing it from the start


def test_a_slow_start_of_all_threads_is_not_the_verdict():
    """The first steps on all threads of a fit can run no faster than one thread (measured:
    a fit of the scikit-learn estimator on a 2-vCPU Intel Xeon, about 70 steps at 1.1-1.2 ms
    against 0.55 ms once running, 1.05 ms on one thread), and the first of them in a process
    can cost some 70 ms more. Judged on that probe, the governor kept one thread for 16
    chunks. A warm-up on all threads, and a first verdict that is checked again soon, keep
    such a fit on all threads but for a few chunks."""
    on_two = [0]

    def per_step(threads, step):
        if threads == 1:
            return 1.05
        on_two[0] += 1
        return 1.15 if on_two[0] <= 70 else 0.55

    times, steps_on, _ = simulate(per_step, 4000)
    assert steps_on[1] <= 3 * CHUNK
    assert sum(times) <= 1.2 * 4000 * 0.55


@pytest.mark.parametrize("start,then", [(quiet, busy), (busy, quiet)])
def test_a_neighbour_that_comes_or_goes_is_noticed(start, then):
    def per_step(threads, step):
        return (start if step < 4000 else then)(threads, step)

    times, _, gov = simulate(per_step, 20000)
    assert gov.current == (1 if then is busy else 2)
    best_after = 16000 * min(then(1, 0), then(2, 0))
    assert sum(times[4000:]) <= 1.15 * best_after


def test_free_cores_at_the_start_spare_the_one_thread_warm_up(monkeypatch):
    """Where no other process's thread is runnable at the start, the unmeasured first chunk
    and the first measurement run on all threads, and one thread is measured only once
    RETRY_START ordinary chunks have run: a short fit never runs a step on one thread (a
    784-128-10 fit on 2 vCPUs had run 80-112 steps on one thread, 0.55 ms each against 0.35
    ms on two; later the 32-step probe of one thread and its call cost a 3-epoch 784-10-10
    fit about 4 ms of 62)."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # the warm-up, the first measurement and ordinary chunks, RETRY_START chunks measured
    before = PROBE_STEPS // 2 + PROBE_STEPS + (RETRY_START - 1) * CHUNK
    times, _, gov = simulate(quiet, others=0)
    assert times[:before].count(1.4) == 0
    assert times[before:before + PROBE_STEPS].count(1.4) == PROBE_STEPS  # then the probe
    assert gov.current == 2
    first = 2 * PROBE_STEPS + PROBE_STEPS // 2  # warm-up, the probes of 1 and 2 threads
    times, _, gov = simulate(quiet, others=None)  # unknown: the warm-up on one thread
    assert times[:first].count(1.4) == PROBE_STEPS + PROBE_STEPS // 2
    times, _, gov = simulate(busy, others=1)  # a neighbour holds a core: no stalled warm-up
    assert times[:PROBE_STEPS // 2].count(4.0) == 0
    assert gov.current == 1


def test_free_cores_at_the_start_still_find_a_faster_single_thread(monkeypatch):
    """A network too small for two threads, on a quiet machine: its deferred probe of one
    thread still moves the run there."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    def small(threads, step):
        return 1.3 if threads == 2 else 1.0

    times, steps_on, gov = simulate(small, 8000, others=0)
    assert gov.current == 1
    assert steps_on[2] <= PROBE_STEPS // 2 + PROBE_STEPS + (RETRY_START + 5) * CHUNK


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's count of runnable threads")
def test_a_busy_neighbour_is_seen_running():
    """A process that loops is runnable at every look (it counts whether or not it holds a
    core at the moment)."""
    quiet = _others_running()
    assert quiet is not None and quiet >= 0
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert _others_running() >= 1
    finally:
        spin.kill()
        spin.wait()


def test_short_steps_make_longer_chunks():
    """Each compiled call costs about 1 ms: where steps are short, an ordinary chunk runs
    about CHUNK_SECONDS, within [CHUNK, CHUNK_GROWTH * CHUNK] steps."""
    assert chunk_steps(CHUNK, None) == CHUNK
    assert chunk_steps(CHUNK, 1.0) == CHUNK
    assert chunk_steps(CHUNK, CHUNK_SECONDS / 300) == 300
    assert chunk_steps(CHUNK, 1e-9) == CHUNK_GROWTH * CHUNK
    gov = Governor(2, CHUNK, lambda: None, others_now=lambda: 0)
    plans = []
    for _ in range(12):
        threads, n = gov.plan()
        plans.append((threads, n))
        gov.record(threads, n * (CHUNK_SECONDS / 400 if threads == 2 else CHUNK_SECONDS / 300), n)
    assert gov.current == 2
    assert (2, 400) in plans  # ordinary chunks on 2 threads: 0.1 s each
    assert all(n <= PROBE_STEPS for t, n in plans if t == 1)  # the probe stays short


def test_one_thread_machine_never_probes():
    gov = Governor(1, CHUNK)
    assert gov.plan() == (1, CHUNK)


def test_cpu_counters_spare_the_probes(monkeypatch):
    """With the system's CPU counters saying nothing changed, no probe runs after the first
    measurements; when they show a neighbour taking a core, the probe runs and the governor
    moves to one thread."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    clock = {"wall": 0.0, "all": 0.0, "own": 0.0, "others": 0.0}

    def sample():
        return clock["wall"], clock["all"], clock["own"]

    def per_step(threads, step):
        busy = step >= 3000
        t = (4.0 if threads == 2 else 1.4) if busy else (1.0 if threads == 2 else 1.4)
        clock["others"] = 1.0 if busy else 0.0
        clock["wall"] += t / 1000
        clock["own"] += t / 1000 * threads
        clock["all"] += t / 1000 * (threads + clock["others"])
        return t

    times, steps_on, gov = simulate(per_step, 6000, sample=sample)
    assert gov.current == 1
    assert steps_on[1] - 3000 < 3000  # it left 2 threads after the neighbour came
    quiet_probes = [t for t in times[80:3000] if t == 1.4]  # after warm-up and first pair
    assert quiet_probes == []  # no 1-thread probe while the counters showed free cores


def test_a_core_taken_from_the_start_is_never_probed(monkeypatch):
    """Counters that show a neighbour holding a core before the first probe of all threads:
    that probe is skipped (it would stall), and made once the core is free again."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    clock = {"wall": 0.0, "all": 0.0, "own": 0.0}

    def sample():
        return clock["wall"], clock["all"], clock["own"]

    def per_step(threads, step):
        busy = step < 3000
        t = (4.0 if threads == 2 else 1.4) if busy else (1.0 if threads == 2 else 1.4)
        clock["wall"] += t / 1000
        clock["own"] += t / 1000 * threads
        clock["all"] += t / 1000 * (threads + (1.0 if busy else 0.0))
        return t

    times, steps_on, gov = simulate(per_step, 12000, sample=sample)
    assert times[:3000].count(4.0) == 0  # no step on a busy core's two threads
    assert gov.current == 2  # and all threads once the neighbour left
    assert sum(times[3000:]) <= 1.15 * 9000 * 1.0
