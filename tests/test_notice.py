"""slow_notice: silent for quick work, one line for slow work, a spinner on a terminal."""

import io
import time

from fastmnist._notice import slow_notice


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_quick_work_is_silent():
    out = io.StringIO()
    with slow_notice("compiling", after=0.5, stream=out) as said:
        pass
    assert out.getvalue() == "" and said["said"] is False


def test_slow_work_is_said_once_before_it_ends():
    out = io.StringIO()
    with slow_notice("compiling", after=0.05, stream=out) as said:
        time.sleep(0.3)
        seen_during = out.getvalue()  # said while the work is still running
    assert seen_during == "compiling\n" and out.getvalue() == "compiling\n"
    assert said["said"] is True


def test_terminal_gets_a_spinner_and_the_time():
    out = _Terminal()
    with slow_notice("compiling", after=0.05, stream=out, interval=0.02):
        time.sleep(0.3)
    text = out.getvalue()
    assert text.count("\r") >= 3 and text.endswith("done in 0 s\n")

