"""Command line: ``fastmnist train | evaluate | predict | data | bench | study | export | compile``.

Each command lives in ``fastmnist/tools/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> exit code``; this module only dispatches and turns fastmnist's errors into a
one-line message and exit code 2 (130 after Ctrl-C), never a traceback.
"""

import argparse
import sys
from importlib import import_module

COMMANDS = ("train", "evaluate", "predict", "data", "bench", "study", "export", "compile")


def _available_commands():
    for name in COMMANDS:
        try:
            yield name, import_module(f"fastmnist.tools.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fastmnist.tools.commands.{name}":
                raise


def build_parser():
    """The argparse parser of every available command."""
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="fastmnist", description="Train small MLPs on MNIST on the CPU, fast.")
    parser.add_argument("--version", action="version", version=f"fastmnist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for _name, module in _available_commands():
        module.add_parser(sub)
    return parser


def main(argv=None):
    """Entry point of the ``fastmnist`` console script; returns the exit code."""
    from .errors import FastMnistError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except FastMnistError as e:
        print(f"fastmnist {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastmnist {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`fastmnist data | head`): not an error worth a message.
        # Point stdout at /dev/null so that Python's own flush at exit stays quiet too
        import os
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (captured)
            pass
        return 141  # as if killed by SIGPIPE, like other command-line tools
    except FileNotFoundError as e:
        reason = e.strerror if e.strerror and "cannot write" in e.strerror else "file not found"
        print(f"fastmnist {args.command}: error: {e.filename or e}: {reason}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a full disk or a folder without write permission
        where = f"{e.filename}: " if e.filename else ""
        print(f"fastmnist {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"fastmnist {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
