"""A notice for slow work that is usually fast: said once, only when the wait is real."""

import contextlib
import itertools
import sys
import threading
import time

SPINNER = "|/-\\"


@contextlib.contextmanager
def slow_notice(message, after=1.0, stream=None, interval=0.1):
    """Run the block; if it is still running after `after` seconds, say `message` once.

    On a terminal the line then carries a spinner and the seconds elapsed until the block
    ends; elsewhere (a log, a pipe) the message is one plain line, written once.

    Parameters
    ----------
    message : str
        What is happening and roughly how long it takes, e.g. ``"kernels: compiling ..."``.
    after : float
        Seconds to wait before saying anything: work that ends sooner stays silent.
    stream : file object, optional
        Where to write (default ``sys.stderr``, looked up when the block starts).
    interval : float
        Seconds between spinner frames on a terminal.

    Yields
    ------
    dict
        ``{"said": bool}``: whether the message was written (filled in when the block ends).
    """
    stream = sys.stderr if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    done = threading.Event()
    said = {"said": False}
    t0 = time.perf_counter()

    def speak():
        if done.wait(after):
            return
        said["said"] = True
        if not tty:
            print(message, file=stream, flush=True)
            return
        for frame in itertools.cycle(SPINNER):
            stream.write(f"\r{message} {frame} {time.perf_counter() - t0:.0f} s")
            stream.flush()
            if done.wait(interval):
                break
        stream.write(f"\r{message} done in {time.perf_counter() - t0:.0f} s\n")
        stream.flush()

    thread = threading.Thread(target=speak, name="fastmnist-notice", daemon=True)
    thread.start()
    try:
        yield said
    finally:
        done.set()
        thread.join()
