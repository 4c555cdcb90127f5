"""The ``ebpfhooks`` command (also ``python -m ebpfhooks``): thin over the library.

Subcommands live in :data:`COMMANDS`, one function each, registered with
:func:`command`; adding one is a decorated function (its arguments are declared by
the ``setup`` callable given to the decorator)::

    @command("hello", "say hello", lambda p: p.add_argument("name"))
    def cmd_hello(args: argparse.Namespace) -> int:
        print("hello", args.name)
        return 0

Every listing takes ``--json``. Errors are printed as ``ebpfhooks: error: ...``
(the message names the input and the fix) with exit status 1 (2 for usage errors);
``--debug`` shows the traceback instead. A command that answers only part of what was
asked (``list`` of kinds this process may not read, ``cleanup`` that could not look
everywhere or kept something back) prints what it has, notes why, and exits 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of `list`)
if TYPE_CHECKING:
    # argparse is imported where a parser is built: a plain `ebpfhooks list PATTERN`
    # never needs it (~6 ms with building the parser; see main)
    import argparse
    from typing import Any, TextIO

__all__ = ["COMMANDS", "Command", "command", "main"]


class Command:
    """A subcommand: its ``name``, one-line ``help``, argument ``setup`` and ``run``.

    >>> COMMANDS["list"].name
    'list'
    """

    __slots__ = ("epilog", "help", "name", "run", "setup")

    def __init__(self, name: str, help: str, setup: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace], int], epilog: str | None = None) -> None:
        self.name = name
        self.help = help
        self.setup = setup
        self.run = run
        self.epilog = epilog

    def __repr__(self) -> str:
        return f"Command({self.name!r})"


#: Every subcommand, by name, in the order ``--help`` lists them.
COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    help: str,
    setup: Callable[[argparse.ArgumentParser], None] = lambda _p: None,
    epilog: str | None = None,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register the decorated function as subcommand ``name``."""
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, setup, run, epilog)
        return run
    return register


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _dump(data: Any, out: TextIO | None = None) -> None:
    import json

    json.dump(data, out or sys.stdout, indent=2)
    (out or sys.stdout).write("\n")


def _note(text: str) -> None:
    print(f"ebpfhooks: note: {text}", file=sys.stderr)


# --------------------------------------------------------------------------- list


def _setup_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*",
                   help="a spec with * and ? wildcards, e.g. 'tracepoint:syscalls:sys_enter_*',"
                        " '*execve*', 'uprobe:/bin/bash:read*' (default: every kernel hook)")
    p.add_argument("--all", action="store_true", dest="include_unsupported",
                   help="also list kinds this kernel cannot attach (kprobes without "
                        "CONFIG_KPROBES, from /proc/kallsyms)")
    _json_flag(p)


@command("list", "list hook points matching a pattern (like bpftrace -l)", _setup_list)
def cmd_list(args: argparse.Namespace) -> int:
    """Print one canonical spec per line; notes (what was left out) go to stderr.

    Exit status 1 when a kind could not be read by this process (not root): the
    lines printed are then only part of the answer, and a note says what is missing.
    """
    return _list(args.pattern, args.include_unsupported, args.json)


def _list(pattern: str, include_unsupported: bool, as_json: bool) -> int:
    from ebpfhooks.discover import search

    listing = search(pattern, include_unsupported=include_unsupported)
    status = 0 if listing.denied is None else 1
    if as_json:
        _dump(listing.to_dict())
        return status
    out = sys.stdout
    out.write("".join(h + "\n" for h in listing.hooks))
    for note in listing.notes:
        _note(note)
    if not listing.hooks and not listing.notes:
        _note(f"no hook matches {pattern!r}")
    return status


#: The options of a plain ``list`` command line (see :func:`_plain_list`).
_LIST_FLAGS = {"--all": "include_unsupported", "--json": "json", "--debug": "debug"}


def _plain_list(words: Sequence[str]) -> tuple[str, set[str]] | None:
    """(pattern, flags) of ``[--debug] list [PATTERN] [--all] [--json] [--debug]``,
    read without argparse; ``None`` for any other command line.

    >>> _plain_list(["list", "*execve*", "--json"])
    ('*execve*', {'json'})
    >>> _plain_list(["list", "--js", "x"]) is None  # argparse reads (and words) the rest
    True

    Only what argparse would read the same way is taken (options spelled out, at most
    one pattern, nothing that starts with ``-``): help, abbreviations, ``--`` and every
    mistake go to argparse, so its messages and exit status 2 are unchanged. Importing
    argparse and building the parser would cost ~6 ms of a command that ``bpftrace -l``
    answers in ~45 (docs/performance.md).
    """
    flags: set[str] = set()
    i = 0
    while i < len(words) and words[i] == "--debug":
        flags.add("debug")
        i += 1
    if i == len(words) or words[i] != "list":
        return None
    pattern: str | None = None
    for word in words[i + 1:]:
        if word in _LIST_FLAGS:
            flags.add(_LIST_FLAGS[word])
        elif word.startswith("-") or pattern is not None:
            return None
        else:
            pattern = word
    return ("*" if pattern is None else pattern), flags


# --------------------------------------------------------------------------- info


def _setup_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="one hook, e.g. tracepoint:sched:sched_switch, "
                                "kprobe:do_sys_openat2, uprobe:/bin/bash:readline")
    _json_flag(p)


@command("info", "describe one hook: format, kallsyms record, ELF symbol (bpftrace -lv)",
         _setup_info)
def cmd_info(args: argparse.Namespace) -> int:
    """Print what the hook is on this system."""
    from ebpfhooks.discover import info

    found = info(args.spec)
    if args.json:
        _dump(found.to_dict())
    else:
        print(found)
    return 0


# --------------------------------------------------------------------------- suggest


def _setup_suggest(p: argparse.ArgumentParser) -> None:
    p.add_argument("word", help="what to observe, e.g. execve, openat, tcp_connect")
    p.add_argument("--chain", action="store_true",
                   help="print a ready-to-paste fallback chain (stable tracepoint first)")
    p.add_argument("--return", action="store_true", dest="ret",
                   help="observe the return (value) instead of the entry: sys_exit_* "
                        "tracepoints and kretprobes")
    p.add_argument("--typed", action="store_true",
                   help="typed arguments matter (the program follows the kernel objects "
                        "the event passes): recommend the tracepoint as tp_btf")
    _json_flag(p)


@command("suggest", "every hook that observes WORD, and the one to use (stable first)",
         _setup_suggest)
def cmd_suggest(args: argparse.Namespace) -> int:
    """Print the candidates as a table and the recommendation."""
    from ebpfhooks.discover import suggest

    s = suggest(args.word, ret=args.ret, typed=args.typed)
    if args.json:
        _dump(s.to_dict())
        return 0 if s.candidates else 1
    if not s.candidates:
        print(f"ebpfhooks: error: {s.reason}\nebpfhooks: look for similar names with: "
              f"ebpfhooks list --all '*{args.word}*'", file=sys.stderr)
        for note in s.notes:
            _note(note)
        return 1
    if args.chain:
        chain = s.chain()
        if chain is None:
            print(f"ebpfhooks: error: {s.reason}", file=sys.stderr)
            return 1
        print(chain)
        return 0
    width = max((len(c.spec) for c in s.candidates), default=10)
    print(f"{'HOOK':<{width}}  {'STABLE':<6}  {'HERE':<4}  WHY")
    for c in s.candidates:
        here = "yes" if c.attachable else "no"
        print(f"{c.spec:<{width}}  {'yes' if c.stable else 'no':<6}  {here:<4}  {c.why}")
    for kind, n in s.more.items():
        print(f"... and {n} more {kind} candidates: ebpfhooks list --all '{kind}:*{s.word}*'")
    for note in s.notes:
        _note(note)
    print()
    if s.recommended:
        print(f"recommended: {s.recommended}  ({s.reason})")
    else:
        print(f"recommended: none: {s.reason}")
    return 0


# --------------------------------------------------------------------------- kallsyms

_TYPES_EPILOG = """\
type letters (upper case: global, lower case: local):
  T/t text (code)          W/w weak symbol           D/d initialised data
  B/b bss (zeroed data)    R/r read-only data        V/v weak object
  A/a absolute value       U undefined               N debugging symbol
kprobes can attach to T, t, W and w symbols."""


def _setup_kallsyms(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="symbol name, * and ? allowed")
    p.add_argument("--module", "-m", help="only this module ('vmlinux': the core kernel)")
    p.add_argument("--type", "-t", help="only these type letters, e.g. T or tT")
    _json_flag(p)


@command("kallsyms", "read /proc/kallsyms as typed records", _setup_kallsyms, _TYPES_EPILOG)
def cmd_kallsyms(args: argparse.Namespace) -> int:
    """Print ``ADDRESS TYPE NAME [MODULE]  description``; hidden addresses say so."""
    from ebpfhooks.discover import kallsyms

    syms = kallsyms(args.pattern, module=args.module, type=args.type)
    hidden = bool(syms) and syms[0].address_hidden
    if args.json:
        _dump({"addresses_hidden": hidden, "symbols": [
            {"address": s.real_address, "type": s.type, "type_description": s.type_description,
             "name": s.name, "module": s.module} for s in syms]})
        return 0
    if hidden:
        _note("kernel addresses are hidden from this process (kernel.kptr_restrict, or not "
              "root): shown as 'hidden', not as real zeros; run as root with "
              "kernel.kptr_restrict=0 or 1 to see them")
    lines = []
    for s in syms:
        addr = "hidden          " if s.address_hidden else f"{s.address:016x}"
        mod = f" [{s.module}]" if s.module else ""
        lines.append(f"{addr} {s.type} {s.name}{mod}  ({s.type_description})\n")
    sys.stdout.write("".join(lines))
    if not syms:
        _note("no symbol matches")
    return 0


# --------------------------------------------------------------------------- doctor


def _setup_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fix", action="store_true",
                   help="mount tracefs at /sys/kernel/tracing and debugfs at /sys/kernel/debug")
    _json_flag(p)


@command("doctor", "can this machine attach each kind? why not, and the fix", _setup_doctor)
def cmd_doctor(args: argparse.Namespace) -> int:
    """Print one screen of checks; exit 0 (a "no" is a finding, not an error)."""
    from ebpfhooks.doctor import report

    rep = report(do_fix=args.fix)
    if args.json:
        _dump(rep.to_dict())
    else:
        print(rep.render())
    return 0


# --------------------------------------------------------------------------- cleanup


def _setup_cleanup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--xdp", metavar="IFACE", action="append", default=[],
                   help="also remove an XDP program on IFACE that ebpfhooks did not record "
                        "(e.g. left by bcc), if no live process holds it (repeatable)")
    p.add_argument("--iface", metavar="IFACE", action="append", default=[],
                   help="only XDP programs and records of IFACE; tracefs events are left "
                        "alone (repeatable)")
    p.add_argument("--pid", metavar="PID", type=_pid, action="append", default=[],
                   help="only what the dead process PID left: its _bcc_PID tracefs events "
                        "and the XDP programs and records it made (repeatable)")
    p.add_argument("--dry-run", "-n", action="store_true",
                   help="only list what would be removed")
    _json_flag(p)


@command("cleanup", "remove kprobe/uprobe events and XDP programs left by dead processes",
         _setup_cleanup, epilog="Never removes anything a live process holds or attached; "
         "needs root. Exit status 0 when everything in scope was looked at and nothing "
         "asked for was kept back, else 1. See docs/lifetimes.md.")
def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove (or with --dry-run list) the leftovers :mod:`ebpfhooks.cleanup` finds."""
    from ebpfhooks.cleanup import clean

    rep = clean(args.xdp, dry_run=args.dry_run, interfaces=args.iface, pids=args.pid)
    if args.json:
        _dump(rep.to_dict())
    else:
        print("\n".join(rep.lines()))
    return 0 if rep.complete else 1


# --------------------------------------------------------------------------- trace


def _positive_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds > 0")
    return value


def _pid(text: str) -> int:
    import argparse

    if not text.isdigit() or not 0 < int(text) < 1 << 22:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pid (a positive integer)")
    return int(text)


def _setup_trace(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="hooks to count (wildcards allowed), e.g. "
                        "'tracepoint:syscalls:sys_enter_open*' uprobe:/bin/bash:readline")
    p.add_argument("--duration", "-d", type=_positive_float,
                   help="stop after this many seconds (default: at Ctrl-C)")
    p.add_argument("--pid", "-p", type=_pid, help="count only this process")
    p.add_argument("--top", type=int, default=10, help="processes shown per hook (10)")
    p.add_argument("--all", action="store_true", dest="include_unsupported",
                   help="let wildcards match kinds this kernel cannot attach (they then fail)")
    _json_flag(p)


@command("trace", "count hits per hook and process (packets per protocol), live", _setup_trace)
def cmd_trace(args: argparse.Namespace) -> int:
    """Attach, redraw the table each second on a terminal, print the summary at the end."""
    from ebpfhooks.trace import live_printer, trace

    def ready(hooks: Sequence[Any]) -> None:
        print(f"ebpfhooks: tracing {len(hooks)} hooks"
              + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C to stop"),
              file=sys.stderr, flush=True)

    summary = trace(args.specs, duration=args.duration, pid=args.pid,
                    on_update=None if args.json else live_printer(sys.stdout, args.top),
                    on_ready=ready, include_unsupported=args.include_unsupported,
                    on_note=_note)
    if args.json:
        _dump(summary.to_dict())
    else:
        print(summary.render(args.top))
    return 0


# --------------------------------------------------------------------------- bench


def _setup_bench(p: argparse.ArgumentParser) -> None:
    from ebpfhooks.bench import add_arguments  # only when `bench` (or --help) is asked for

    add_arguments(p)


@command("bench", "measure the extra time per event each hook kind adds on this kernel",
         _setup_bench)
def cmd_bench(args: argparse.Namespace) -> int:
    """Table (or JSON) of ns per event without and with each kind; see docs/performance.md."""
    from ebpfhooks.bench import run_command

    return run_command(args)


# --------------------------------------------------------------------------- main


def _formatter() -> type[argparse.HelpFormatter]:
    """argparse's formatter told the width, so that argparse does not import shutil (~5 ms).

    The width is what ``shutil.get_terminal_size`` would give: ``$COLUMNS``, else the
    terminal's, else 80, less 2 (as argparse does). Made where a parser is built, as
    argparse is imported there.
    """
    import argparse

    class Formatter(argparse.RawDescriptionHelpFormatter):
        def __init__(self, prog: str) -> None:
            try:
                columns = int(os.environ["COLUMNS"])
            except (KeyError, ValueError):
                try:
                    columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
                except (AttributeError, OSError, ValueError):
                    columns = 80
            super().__init__(prog, width=max(columns, 20) - 2)

    return Formatter


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand (or just ``only``'s).

    >>> build_parser().parse_args(["list", "t:sched:*"]).pattern
    't:sched:*'

    ``main`` passes the command it sees in argv as ``only``: building the other seven
    subparsers would cost ~10 ms of a command that bpftrace answers in ~80 ms.
    """
    import argparse

    from ebpfhooks import __version__

    formatter = _formatter()
    parser = argparse.ArgumentParser(
        prog="ebpfhooks",
        description="Find, inspect and count eBPF hook points (run as root).",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"ebpfhooks {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        if only is not None and cmd.name != only:
            continue
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, epilog=cmd.epilog,
                           formatter_class=formatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        cmd.setup(p)
        p.set_defaults(run=cmd.run)
    return parser


def _error_text(err: BaseException) -> str:
    from ebpfhooks.errors import EbpfHooksError

    text = str(err) or type(err).__name__
    if isinstance(err, PermissionError) and not isinstance(err, EbpfHooksError):
        # a read the library did not expect to be refused: still say what fixes it
        where = f"{err.filename}: " if err.filename else ""
        text = (f"{where}{err.strerror or text} (this process is uid {os.geteuid()}); "
                "rerun as root (e.g. with sudo)")
    return "ebpfhooks: error: " + text.replace("\n", "\nebpfhooks: ")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C).

    A plain ``ebpfhooks list PATTERN`` (:func:`_plain_list`) runs without argparse.
    """
    from ebpfhooks.errors import EbpfHooksError

    words = list(sys.argv[1:] if argv is None else argv)
    plain = _plain_list(words)
    if plain is not None:
        pattern, flags = plain
        debug = "debug" in flags

        def run() -> int:
            return _list(pattern, "include_unsupported" in flags, "json" in flags)
    else:
        command = next((w for w in words if not w.startswith("-")), None)
        parser = build_parser(only=command if command in COMMANDS else None)
        args = parser.parse_args(words)
        if getattr(args, "run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        debug = args.debug

        def run() -> int:
            status: int = args.run(args)
            return status
    try:
        status = run()
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # the reader (head, less) went away: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except (EbpfHooksError, OSError, KeyError) as err:
        if debug:
            raise
        print(_error_text(err), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
