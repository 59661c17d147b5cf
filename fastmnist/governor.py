"""How many threads the next chunk of training steps gets, chosen from measured step times.

Two threads meet at two barriers per optimizer step. When another process keeps a core busy,
the operating system deschedules one of them and the other spins at the barrier for a time
slice: on a 2-core machine with one busy-looping neighbour the default recipe took 4.1 s on
two threads against 1.0 s on one (0.77 s quiet on two). No setting fixes that for every
machine, so :class:`Governor` measures: it times each chunk of steps (``train.CHUNK_STEPS``),
tries one thread early and again from time to time, and runs each chunk on whichever count
has been faster lately.

Results do not depend on the choice: the Numba backend sums a batch's gradient in a fixed
number of parts (one per thread the machine has), whatever the number of threads running them.
"""

import math
import os
import time

#: steps of a chunk that measures a thread count (chunks that do not run CHUNK_STEPS)
PROBE_STEPS = 32

#: chunks on the faster count before the other is measured again (doubling when confirmed,
#: up to RETRY_MOST: a neighbour that leaves while one thread runs, which no step time shows,
#: is noticed within RETRY_MOST chunks; each probe of a busy core costs PROBE_STEPS slow steps)
RETRY_START = 8
RETRY_MOST = 16

#: the wait after the first verdict from a measurement of all threads, where one thread was
#: faster: the first steps on all threads can be slow for reasons that pass (see
#: :class:`Governor`)
RETRY_FIRST = 2

#: a count whose last chunk took this much longer (or shorter) than its estimate is re-checked
JUMP = 1.3

#: the shortest window of CPU counters that may skip the first probe of all threads (the
#: counters tick every 10 ms)
START_WINDOW = 0.05

#: seconds an ordinary chunk aims at, where its least steps take less: every compiled call
#: costs about 1 ms (the weights copied in and out, work buffers made), 3.2 ms of a 47 ms
#: 784-10-10 epoch in chunks of 128 steps; Ctrl-C is still answered within about this
CHUNK_SECONDS = 0.1

#: the most steps of an ordinary chunk, in multiples of its least
CHUNK_GROWTH = 8


def chunk_steps(least, per_step):
    """Steps of an ordinary chunk: about CHUNK_SECONDS at `per_step` seconds a step (None, or
    not a positive number: unknown), at least `least` and at most CHUNK_GROWTH times that."""
    if per_step is None or not 0 < per_step < math.inf:
        return least
    return int(min(least * CHUNK_GROWTH, max(least, CHUNK_SECONDS / per_step)))


def _cpu_sample():
    """(wall seconds, CPU seconds all processes used, CPU seconds this process used), or None
    where the system's counters cannot be read (``/proc/stat`` is Linux's)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 8 or fields[0] != b"cpu":
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait are taken
    # (steal: a hypervisor gave the core to another machine)
    ticks = [int(v) for v in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return time.perf_counter(), busy / _TICKS, own.user + own.system


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _others_running(readings=3):
    """Threads of other processes that are runnable now: the kernel's count of runnable
    threads (``/proc/loadavg``) less this process's running ones, the least of `readings`
    looks (a kernel worker is runnable for moments, a busy neighbour all the time); None
    where Linux's files cannot be read."""
    least = None
    for _ in range(readings):
        try:
            with open("/proc/loadavg", "rb") as f:
                running = int(f.read().split()[3].split(b"/")[0])
            tids = os.listdir("/proc/self/task")
        except (OSError, ValueError, IndexError):
            return None
        own = 0
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # the thread ended meanwhile
                continue
            own += stat[stat.rfind(b")") + 2:][:1] == b"R"
        others = max(0, running - own)
        least = others if least is None else min(least, others)
    return least


class Governor:
    """Choose 1 or `most` threads, and the steps, of each chunk from measured step times.

    Parameters
    ----------
    most : int
        The largest thread count to use (the backend's current count).
    chunk : int
        The least steps of an ordinary chunk (:func:`chunk_steps` makes it longer where
        steps are short).
    sample : callable
        () -> (wall seconds, CPU seconds of all processes, CPU seconds of this one) or None:
        the system's CPU counters (:func:`_cpu_sample`).
    others_now : callable
        () -> threads of other processes runnable now, or None (:func:`_others_running`).

    Notes
    -----
    The first chunk (PROBE_STEPS // 2 steps) is not measured: it may compile the kernels. It
    runs on `most` threads where other processes' runnable threads leave a core for each at the
    start (`others_now`; the chunk then also wakes the other cores), and on one thread otherwise
    (cheap whether a core is busy or not). With the cores free, PROBE_STEPS steps on `most`
    threads are measured next and ordinary chunks follow on them; one thread is measured once
    RETRY_START chunks have run (then as below), so that a short fit on a quiet machine never
    runs steps on one thread (the probe and its call had cost a 3-epoch 784-128-10 fit 13% on
    an AMD EPYC). Otherwise PROBE_STEPS steps run on one thread and as many on `most`; where
    the system's CPU counters show another process holding a core already, the probe of
    `most` is skipped until they show it free (a step on two threads with one core
    taken cost six of one thread's, fast98 on an Intel Xeon); one thread runs until they have
    START_WINDOW seconds to say. The first chunk on `most` threads is not measured either
    (PROBE_STEPS steps after a warm-up on one thread), and the first verdict for one thread is
    checked again after two chunks: a fit's first steps on all threads can run no faster than
    one thread (the scikit-learn estimator on a 2-vCPU Intel Xeon, about 70 steps; the first in
    a process some 70 ms more), and one thread was then kept for 16 chunks. A probe's time
    replaces the count's estimate (it is the newest word on conditions that may have changed
    since); whole chunks on the current count are averaged. From then on the faster count runs
    whole chunks, and the other is measured again (PROBE_STEPS steps) after RETRY_START chunks;
    the wait doubles up to RETRY_MOST each time the choice is confirmed, and starts over when
    the running count's step time jumps by JUMP (a neighbour process started or stopped). Where
    the system's CPU counters can be read (Linux), a due probe is skipped while they say the
    choice still holds: other processes leave a core per thread free and all threads run, or
    they take one and a single thread runs. A probe on a busy machine costs PROBE_STEPS slow
    steps, not a whole slow chunk.
    """

    def __init__(self, most, chunk, sample=_cpu_sample, others_now=_others_running):
        self.most = max(1, int(most))
        self.chunk = int(chunk)
        self.sample = sample
        self.since_sample = sample()  # the window over which other processes' load is seen
        others = others_now() if self.most > 1 else None
        # a core for each thread now: the first chunk runs on all threads (the warm-up of
        # `most` threads too), and the counters' START_WINDOW is not waited for
        self.start_free = others is not None and self._room(others)
        self.time = {}          # count -> estimate of seconds per step
        self.full = {}          # count -> the same, from whole chunks only
        self.warm = False
        self.warm_most = False  # the first chunk on `most` threads has run (unmeasured)
        self.judged = False     # a measurement of `most` threads has been compared
        # the count measured first: all threads where the cores are free at the start (one
        # thread is then measured after `wait` chunks: a short fit never runs its probe)
        self.current = self.most if self.start_free else 1
        self.wait = RETRY_START
        self.since = 0          # chunks on the current count since the other was measured

    def plan(self):
        """(threads, most steps) for the next chunk."""
        if self.most == 1:
            return 1, self.chunk
        if not self.warm:
            return (self.most if self.start_free else 1), PROBE_STEPS // 2
        if self.start_free and self.most not in self.time:
            return self.most, PROBE_STEPS
        if 1 not in self.time:
            if self.start_free and self.since < self.wait:
                return self.current, self._ordinary()
            return 1, PROBE_STEPS
        if self.most not in self.time:
            if self.warm_most:  # the counters allowed the warm-up: the probe follows it
                return self.most, PROBE_STEPS
            free = self._cores_free(START_WINDOW)
            if free is None and self.since_sample is not None:  # counters, but too few ticks
                return 1, PROBE_STEPS
            if free is False:  # a neighbour holds a core already: all threads would stall;
                self.time[self.most] = math.inf  # measured once the counters show it free
                return 1, self._ordinary()
            return self.most, PROBE_STEPS  # the warm-up, then the probe
        if self.since >= self.wait:
            if self._load_unchanged():
                self.since = 0
                return self.current, self._ordinary()
            return (1 if self.current == self.most else self.most), PROBE_STEPS
        return self.current, self._ordinary()

    def _ordinary(self):
        """Steps of an ordinary chunk on the current count (:func:`chunk_steps`)."""
        return chunk_steps(self.chunk, self.time.get(self.current))

    def _cores_free(self, window):
        """Whether other processes left a core free for each thread since the last look at
        the counters (which this moves on); None when unknown (no counters, or fewer than
        `window` seconds since)."""
        now, before = self.sample(), self.since_sample
        if now is None or before is None or now[0] - before[0] < window:
            return None
        self.since_sample = now
        wall = now[0] - before[0]
        others = ((now[1] - before[1]) - (now[2] - before[2])) / wall  # cores others used
        return self._room(others)

    def _room(self, others):
        """Whether the cores other processes leave (they use `others`, a count or an average)
        give each of `most` threads one (half a core of slack for the counters' ticks)."""
        return (os.cpu_count() or self.most) - others >= self.most - 0.5

    def _load_unchanged(self):
        """Whether the other processes' CPU use since the last probe says the current choice
        still holds: all threads with the cores free, one thread with a core taken. Unknown
        (no counters, a window under 0.2 s): False, so that the probe runs."""
        free = self._cores_free(0.2)
        return free is not None and free == (self.current == self.most)

    def record(self, threads, seconds, steps):
        """Feed back that `steps` steps on `threads` threads took `seconds`."""
        if self.most == 1 or steps <= 0:
            return
        if not self.warm:  # compilation, thread start-up
            self.warm = True
            self.warm_most = threads == self.most
            return
        if threads == self.most and not self.warm_most:  # the other cores waking up
            self.warm_most = True
            return
        if steps < PROBE_STEPS:  # an epoch's short tail: the call's own cost dominates
            return
        per_step = seconds / steps
        before = self.time.get(threads)
        known = before is not None and math.isfinite(before)  # inf: skipped, see plan
        probe = threads != self.current
        self.time[threads] = 0.5 * (before + per_step) if known and not probe else per_step
        # a jump is judged between whole chunks only (a probe's call cost weighs more per step)
        full = steps >= self.chunk
        was = self.full.get(threads) if full else None
        jumped = was is not None and not was / JUMP <= per_step <= was * JUMP
        if full:
            self.full[threads] = per_step if was is None or jumped else 0.5 * (was + per_step)
        if jumped:
            self.time[threads] = per_step
        if len(self.time) < 2:
            if self.start_free:  # all threads measured, one not yet: chunks until its turn
                self.since = math.inf if jumped else self.since + 1
            return
        judged, self.judged = self.judged, self.judged or (probe and threads == self.most)
        best = min(self.time, key=self.time.get)
        if probe:  # the other count was measured
            self.since = 0
            self.since_sample = self.sample()
            if best == self.current:
                first = threads == self.most and not judged
                self.wait = RETRY_FIRST if first else min(self.wait * 2, RETRY_MOST)
            else:
                self.current, self.wait = best, RETRY_START
        elif jumped:
            self.since = math.inf  # conditions changed: measure the other count next
        else:
            self.since += 1
