"""``ebpfhooks bench``: the options, and the command that runs the bench and prints it.

:func:`add_arguments` gives the CLI's ``bench`` subparser its options and
:func:`run_command` runs it; :func:`main` is the same as a program of its own
(``python -m ebpfhooks.bench --kinds uprobe --rounds 3``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ebpfhooks.bench.measure import CLOCKS, run
from ebpfhooks.bench.report import KIND_ORDER
from ebpfhooks.errors import EbpfHooksError

__all__ = ["add_arguments", "main", "run_command"]

def main(argv: Sequence[str] | None = None) -> int:
    """``ebpfhooks bench``: print the table (or JSON), optionally write the plot."""
    parser = argparse.ArgumentParser(
        prog="ebpfhooks bench",
        description="Measure the extra time per event each hook kind adds on this kernel.")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options, for the CLI's subparser."""
    parser.add_argument("--kinds", nargs="+", metavar="KIND",
                        help=f"kinds to measure (default: all; commas allowed): "
                             f"{', '.join(KIND_ORDER)}")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per kind (default: 41 for syscalls, 21 for calls, "
                             "81 for packets)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the events per batch (default 1.0)")
    parser.add_argument("--cpu", type=int, default=-2,
                        help="pin the trigger to this CPU (default: the last; -1: no pinning)")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="time batches by the trigger's CPU time (default) or wall time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write a bar chart (needs matplotlib: ebpfhooks[plot])")


def run_command(args: argparse.Namespace) -> int:
    """Run the bench for parsed ``bench`` options; return the exit status."""
    if args.plot:  # fail before a minute of measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("ebpfhooks bench: --plot needs matplotlib: pip install 'ebpfhooks[plot]'",
                  file=sys.stderr)
            return 2
    cpu = None if args.cpu == -1 else args.cpu
    try:
        report = run(args.kinds, args.rounds, scale=args.scale, cpu=cpu,
                     clock=getattr(args, "clock", "cpu"),
                     progress=None if args.json else
                     (lambda m: print(f"... {m}", file=sys.stderr, flush=True)))
    except EbpfHooksError as err:
        print(f"ebpfhooks bench: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.format_table())
    if args.plot:
        report.plot(args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    bad = [r.kind for r in report.results if r.supported and not r.proven]
    if bad:
        print(f"ebpfhooks bench: the counter does not match the events for {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0
