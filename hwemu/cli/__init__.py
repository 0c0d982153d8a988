"""The ``hwemu`` command line: parse, call the library, print.

Each area of hwemu contributes its subcommands through a ``register(subparsers)`` function in
its own module of this package (listed in ``_COMMAND_MODULES``); the handler set with
``parser.set_defaults(func=...)`` receives the parsed arguments and returns an exit status.

Exit status: 0 on success, 2 on bad input or usage (one line on stderr, no traceback), 1 on an
internal error (set ``HWEMU_DEBUG=1`` to see its traceback).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import shlex
import sys
import traceback

from hwemu import __version__
from hwemu.cli import cachesim, dma, machine, migrate, report, trace
from hwemu.cli.output import print_json  # noqa: F401  (re-exported: hwemu.cli.print_json)
from hwemu.errors import HwemuError

# Modules that each define register(subparsers). Order is the order in --help. They import
# the library lazily, inside their handlers, so that `hwemu --help` stays fast.
_COMMAND_MODULES = (trace, cachesim, machine, migrate, report, dma)

DESCRIPTION = """\
hwemu replays memory traces of real programs on a cycle-approximate model of a NUMA machine
and measures what page migration buys and what it costs.

typical session:
  hwemu trace record --out ls.parquet -- /bin/ls /      record a real program with Valgrind
  hwemu trace info ls.parquet                          what is in the trace
  hwemu cachesim ls.parquet --I1 32768,8,64 --D1 32768,8,64 --LL 8388608,16,64
  hwemu machine show skx-2s                            topology and idle latency matrix
  hwemu run --machine skx-2s ls.parquet                timing replay

Every command that reports numbers takes --json. Run 'hwemu COMMAND --help' for details.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error and exit status 2."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}{_did_you_mean(self, message)} "
                     f"(see '{self.prog} --help')\n")


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands, recursively."""
    out: set[str] = set()
    for action in parser._actions:
        out.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return out


def _did_you_mean(parser: argparse.ArgumentParser, message: str) -> str:
    """"; did you mean X?" for a mistyped command, choice or option."""
    import difflib
    import re

    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        choices = re.findall(r"'([^']*)'", m.group(2))
        close = difflib.get_close_matches(m.group(1), choices, n=1)
        return f"; did you mean '{close[0]}'?" if close else ""
    m = re.search(r"unrecognized arguments: (.*)", message)
    if m:
        options = sorted(_option_strings(parser))
        for word in m.group(1).split():
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=")[0], options, n=1)
                if close:
                    return f"; did you mean {close[0]}?"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwemu",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hwemu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that it unwinds like KeyboardInterrupt does on
    SIGINT: every atomic write in progress removes its temporary file (hwemu.fileio)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _install_sigterm() -> list:
    """Turn SIGTERM into :class:`Terminated` (main thread only); returns ``[old handler]``,
    or ``[]`` if it could not be installed."""
    try:
        return [signal.signal(signal.SIGTERM, _on_sigterm)]
    except (ValueError, OSError):  # not the main thread
        return []


def main(argv: list[str] | None = None, process_ends: bool = False) -> int:
    """Run the command ``argv`` (default: the process's arguments); its exit status.
    ``process_ends``: the process ends when this returns (the ``hwemu`` command, see
    :func:`console`), so a command may leave process-wide settings changed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.process_ends = process_ends
    # the command as typed, for the provenance of reports
    args.command_line = shlex.join(["hwemu", *(sys.argv[1:] if argv is None else argv)])
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    old = _install_sigterm()
    try:
        status = args.func(args)
        sys.stdout.flush()
        return int(status or 0)
    except HwemuError as exc:
        print(f"hwemu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwemu: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("hwemu: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # Output piped into head(1) or similar: not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # internal error: one line unless debugging
        if os.environ.get("HWEMU_DEBUG"):
            traceback.print_exc()
        else:
            print(f"hwemu: internal error: {type(exc).__name__}: {exc} "
                  "(set HWEMU_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    finally:
        if old:
            signal.signal(signal.SIGTERM, old[0] if old[0] is not None else signal.SIG_DFL)


def console() -> int:
    """The ``hwemu`` command: :func:`main` for a process that ends when it returns. What the
    command leaves behind is then frozen (``gc.freeze``), so that the interpreter's exit does
    not have the collector examine and free it: after a large run that is millions of pages,
    entries and list nodes, 3 s of host time at a 4 GiB footprint for nothing."""
    status = main(process_ends=True)
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(console())
