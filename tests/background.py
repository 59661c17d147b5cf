"""Slow subprocess work started as soon as pytest has collected the tests that need it.

The slowest tests start fresh processes that compile the kernels into an empty Numba cache (the
plain loops, another CPU's intrinsics, the first run). Numba compiles on one core, and so does
most of the main test process: run one after the other, they leave the second core of a 2-core
CI machine idle for minutes. A `Job` is that subprocess work, written as a function; tests that
need it carry ``@pytest.mark.background(job)``. Once collection ends, ``conftest.py`` hands the
jobs of the selected tests to one worker thread, which runs them one at a time, longest first,
beside the main process, and moves those tests to the end of the session. A test then calls
``job.result()``: the job's return value, or its exception, once it has finished (the job runs in
the test itself when it was not started early).

Jobs start early only when no benchmark is timed: a compiler beside a timed benchmark would
slow it down.
"""

import os
import shutil
import subprocess
import tempfile
import threading

_LIVE = set()  # Popen objects of running jobs, killed when the session ends
_LOCK = threading.Lock()
_STOPPED = threading.Event()  # the session has ended: no new process


class Job:
    """Subprocess work for one or more tests: ``fn(folder)`` with a fresh temporary folder.

    Parameters
    ----------
    fn : callable
        ``fn(folder) -> value``; runs its processes through :func:`run`.
    cost : float
        Seconds it takes alone on a quiet machine, roughly: longer jobs start first.
    """

    def __init__(self, fn, cost):
        self.fn, self.cost, self.name = fn, cost, fn.__name__
        self.folder = None
        self._done = threading.Event()
        self._claimed = False
        self._lock = threading.Lock()
        self._value = self._error = None

    def _claim(self):
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    def _run(self):
        try:
            self.folder = tempfile.mkdtemp(prefix=f"fastmnist-{self.name}-")
            self._value = self.fn(self.folder)
        except BaseException as error:  # handed to the test that asks
            self._error = error
        finally:
            self._done.set()

    def wait(self):
        """Wait until the job has run (here and now, if nobody started it); raise nothing."""
        if self._claim():
            self._run()
        self._done.wait()

    def result(self):
        """The job's value once it has run (here and now, if nobody started it)."""
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def cleanup(self):
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def job(cost):
    """Decorator: the function becomes a `Job` taking `cost` seconds or so."""
    return lambda fn: Job(fn, cost)


def run(argv, timeout, **kwargs):
    """`subprocess.run(argv, capture_output=True, text=True, ...)`, killed with the session."""
    with _LOCK:
        if _STOPPED.is_set():
            raise RuntimeError("the test session has ended")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)
        _LIVE.add(proc)
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from None
        finally:
            with _LOCK:
                _LIVE.discard(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def start(jobs):
    """Run `jobs` one at a time, longest first, in a daemon thread."""
    queue = sorted(set(jobs), key=lambda j: -j.cost)

    def worker():
        for j in queue:
            if not _STOPPED.is_set() and j._claim():
                j._run()

    if queue:
        threading.Thread(target=worker, name="fastmnist-background-jobs", daemon=True).start()


def stop(jobs):
    """Kill what still runs, start nothing more, and remove the jobs' folders."""
    with _LOCK:
        _STOPPED.set()
        for proc in list(_LIVE):
            proc.kill()
    for j in set(jobs):
        j.cleanup()


def env(**changes):
    """os.environ with `changes`."""
    return dict(os.environ, **changes)
