"""docs/errors.md is generated from these cases and checked against them.

Each case produces a real error from a real bad input (as root on the CI machine;
unprivileged cases run through ``setpriv --reuid=65534``, the unmounted-tracefs case
in a private mount namespace through ``unshare -m``). The test renders the table and
compares it with the one in docs/errors.md. After changing a message, regenerate with::

    EBPFHOOKS_WRITE_DOCS=1 .venv/bin/python -m pytest tests/test_errors_doc.py

It also checks that every error class in ``ebpfhooks.errors`` has a row.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import ebpfhooks.errors as errors_module
from ebpfhooks import Hook, Program
from ebpfhooks.errors import EbpfHooksError

DOC = Path(__file__).parent.parent / "docs" / "errors.md"
START, END = "<!-- errors-table:start -->", "<!-- errors-table:end -->"
FIXTURES = Path(__file__).parent / "fixtures" / "kernel"
# The arm64 file is made in a directory of its own per run (concurrent runs must not
# share a path); the table shows it under this stable name.
ARM_ELF = Path("/tmp/ebpfhooks-doc-arm64.elf")


def _python(code: str, *prefix: str) -> str:
    """Run ``code`` in a fresh interpreter (under ``prefix``), return the error it prints."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from ebpfhooks import *
        from ebpfhooks.elf.resolve import resolve_binary
        try:
        {textwrap.indent(textwrap.dedent(code), '    ')}
        except EbpfHooksError as err:
            print(type(err).__name__)
            print(err)
        else:
            print("no error")
    """)
    out = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _in_subprocess(name: str, code: str, *prefix: str) -> Callable[[], str]:
    def run() -> str:
        if prefix and shutil.which(prefix[0]) is None:
            pytest.fail(f"{prefix[0]} is needed for the {name} row of docs/errors.md")
        got = _python(code, *prefix)
        first, _, message = got.partition("\n")
        assert first == name, got
        return message.rstrip("\n")
    return run


def _raises(name: str, thunk: Callable[[], object]) -> Callable[[], str]:
    def run() -> str:
        try:
            thunk()
        except EbpfHooksError as err:
            assert type(err).__name__ == name, repr(err)
            return str(err)
        raise AssertionError(f"{name}: no error")
    return run


def _resolve(spec: str) -> Callable[[], object]:
    return lambda: Hook.from_spec(spec).resolve()


def _arm_elf() -> str:
    """The WrongArchitectureError for an arm64 ELF file, its path shown as ``ARM_ELF``."""
    data = bytearray(Path("/bin/true").read_bytes()[:4096])
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    with tempfile.TemporaryDirectory(prefix="ebpfhooks-doc-") as tmp:
        elf = Path(tmp) / ARM_ELF.name
        elf.write_bytes(bytes(data))
        message = _raises("WrongArchitectureError",
                          lambda: Hook.from_spec(f"uprobe:{elf}:main").resolve())()
    assert str(elf) in message, message
    return message.replace(str(elf), str(ARM_ELF))


def _no_trampolines() -> None:
    from ebpfhooks.hooks import kprobe
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import Feature, FeatureStatus

    real, real_kprobes = features.trampolines, kprobe.kprobes_supported
    features.trampolines = lambda: Feature(  # type: ignore[assignment]
        "trampolines", FeatureStatus.NO, "kernel 6.18.44 refused a fentry program on "
        "bpf_fentry_test1: EPERM (Operation not permitted)", "use kprobes or tracepoints")
    kprobe.kprobes_supported = lambda: False
    try:
        Hook.from_spec("fentry:do_sys_openat2").check_supported()
    finally:
        features.trampolines = real  # type: ignore[method-assign]
        kprobe.kprobes_supported = real_kprobes


def _no_kprobes() -> None:
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import Feature, FeatureStatus

    real = features.kprobes
    features.kprobes = lambda: Feature(  # type: ignore[assignment]
        "kprobes", FeatureStatus.NO, "no kprobe PMU and no kprobe_events in tracefs",
        "use a kernel built with CONFIG_KPROBES=y")
    try:
        Hook.from_spec("kprobe:do_sys_openat2").check_supported()
    finally:
        features.kprobes = real  # type: ignore[method-assign]


class _StandIn:
    """Has what a bcc module has for Program(): a load_func and a funcs table."""

    funcs: dict[bytes, object] = {}  # noqa: RUF012

    def load_func(self, *args: object) -> None:
        raise AssertionError("not reached")


def _no_bcc() -> None:
    from ebpfhooks import _bcc

    saved, had = sys.modules.get("bcc"), "bcc" in sys.modules
    sys.modules["bcc"] = None  # type: ignore[assignment]
    old, _bcc.core._bcc = _bcc.core._bcc, None
    try:
        _bcc.load()
    finally:
        _bcc.core._bcc = old
        if had:
            sys.modules["bcc"] = saved  # type: ignore[assignment]
        else:
            del sys.modules["bcc"]


def _bad_xdp_mechanism() -> None:
    from ebpfhooks import _bcc

    os.environ["EBPFHOOKS_XDP_ATTACH"] = "ioctl"
    try:
        _bcc.xdp_attach_mode()
    finally:
        del os.environ["EBPFHOOKS_XDP_ATTACH"]


UNMOUNT = ["unshare", "-m", "sh", "-c",
           "mount --make-rprivate / && umount -l /sys/kernel/tracing; "
           "umount -l /sys/kernel/debug; exec \"$0\" \"$@\""]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]

#: (error, example input, fix, how to produce it)
CASES: list[tuple[str, str, str, Callable[[], str]]] = [
    ("SpecError", "`kprob:vfs_read`", "use the kind it suggests",
     _raises("SpecError", lambda: Hook.from_spec("kprob:vfs_read"))),
    ("SpecError", "`tracepoint:syscalls:sys_enter_open\"at` (hostile name)",
     "names are letters, digits and `_`; nothing else reaches tracefs or C",
     _raises("SpecError", lambda: Hook.from_spec('tracepoint:syscalls:sys_enter_open"at'))),
    ("SpecError", "`xdp:eth0;reboot`", "an interface name, at most 15 characters",
     _raises("SpecError", lambda: Hook.from_spec("xdp:eth0;reboot"))),
    ("SymbolNotFoundError", "`uprobe:/bin/bash:readlin`", "use one of the closest names",
     _raises("SymbolNotFoundError", _resolve("uprobe:/bin/bash:readlin"))),
    ("TracepointNotFoundError", "`tracepoint:syscalls:sys_enter_opnat`",
     "use one of the closest names (`ebpfhooks list`)",
     _raises("TracepointNotFoundError", _resolve("tracepoint:syscalls:sys_enter_opnat"))),
    ("InterfaceNotFoundError", "`xdp:nosuchif0` (in a fresh network namespace, `unshare -n`)",
     "`ip link show`", _in_subprocess("InterfaceNotFoundError",
                                      "Hook.from_spec('xdp:nosuchif0').resolve()",
                                      "unshare", "-n")),
    ("BinaryNotFoundError", "`uprobe:/nonexistent/app:main`", "give an existing path",
     _raises("BinaryNotFoundError", _resolve("uprobe:/nonexistent/app:main"))),
    ("LibraryNotFoundError", "`uprobe:libnosuchlib:f`",
     "give the library's path or install it",
     _raises("LibraryNotFoundError", _resolve("uprobe:libnosuchlib:f"))),
    ("ProcessNotFoundError", "`uprobe:c:malloc[pid=4194303]` (no such process)",
     "check the pid with `ps -p PID`",
     _raises("ProcessNotFoundError", _resolve("uprobe:c:malloc[pid=4194303]"))),
    ("UsdtProbeNotFoundError", "`usdt:/usr/bin/python3.11:python:gc_start`",
     "use one of the closest names (`ebpfhooks list 'usdt:BINARY:*'`)",
     _raises("UsdtProbeNotFoundError", _resolve("usdt:/usr/bin/python3.11:python:gc_start"))),
    ("NotAnElfError", "`uprobe:/etc/passwd:main`", "probe an executable or library",
     _raises("NotAnElfError", _resolve("uprobe:/etc/passwd:main"))),
    ("WrongArchitectureError", f"`uprobe:{ARM_ELF}:main` (an arm64 ELF)",
     "probe the build for this machine", _arm_elf),
    ("ImportedSymbolError", "`uprobe:/usr/bin/true:malloc`",
     "probe the library that defines it", _raises("ImportedSymbolError",
                                                  _resolve("uprobe:/usr/bin/true:malloc"))),
    ("OffsetOutOfRangeError", "`uprobe:/bin/bash:readline+1000000`",
     "an offset inside the function", _raises("OffsetOutOfRangeError",
                                              _resolve("uprobe:/bin/bash:readline+1000000"))),
    ("AddressNotExecutableError", "`uprobe:/bin/bash:0x1`",
     "an address inside the code (`nm`)", _raises("AddressNotExecutableError",
                                                  _resolve("uprobe:/bin/bash:0x1"))),
    ("NotSupportedError", "`kprobe:do_sys_openat2` on a kernel without CONFIG_KPROBES",
     "use `err.alternative`, or a kernel with the feature",
     _raises("NotSupportedError", _no_kprobes)),
    ("NotSupportedError", "`fentry:do_sys_openat2` on a kernel without BPF trampolines "
     "(and without kprobes)", "use `err.alternative`, or a kernel with the feature",
     _raises("NotSupportedError", _no_trampolines)),
    ("TracefsNotMountedError", "`tracepoint:syscalls:sys_enter_openat` with tracefs "
     "unmounted (`unshare -m`)", "mount tracefs (or `ebpfhooks doctor --fix`)",
     _in_subprocess("TracefsNotMountedError",
                    "Hook.from_spec('tracepoint:syscalls:sys_enter_openat').resolve()",
                    *UNMOUNT)),
    ("HookPermissionError", "`tracepoint:syscalls:sys_enter_openat` attached as user "
     "nobody (`setpriv`)", "run as root or grant the capability it names",
     _in_subprocess("HookPermissionError",
                    "Hook.from_spec('tracepoint:syscalls:sys_enter_openat')"
                    ".attach(type('BPF', (), {'load_func': print, 'funcs': {}})(), "
                    "fn_name='f')", *NOBODY)),
    ("HookPermissionError", "`tracepoint:sched:sched_switch` resolved as user nobody "
     "(tracefs is root's, mode 0700)", "run as root, or grant CAP_DAC_READ_SEARCH",
     _in_subprocess("HookPermissionError",
                    "Hook.from_spec('tracepoint:sched:sched_switch').resolve()", *NOBODY)),
    ("HookPermissionError", "`resolve_binary('c', pid=1)` as user nobody",
     "run as root or as the process's user",
     _in_subprocess("HookPermissionError", "resolve_binary('c', 1)", *NOBODY)),
    ("AttachError", "`EBPFHOOKS_XDP_ATTACH=ioctl`", "`auto`, `link` or `netlink`",
     _raises("AttachError", _bad_xdp_mechanism)),
    ("ProgramError", "`Program(bpf, '1st')`", "the name of a function in the BPF source",
     _raises("ProgramError", lambda: Program(_StandIn(), "1st"))),
    ("ProgramTypeError", "`hook.attach(None, 'fn')`", "compile the source with bcc first: "
     "`BPF(text=SOURCE)`", _raises("ProgramTypeError", lambda: Hook.from_spec(
         "tracepoint:syscalls:sys_enter_openat").attach(None, "fn"))),
    ("BccNotFoundError", "a Python that cannot import bcc", "install bcc from the distribution",
     _raises("BccNotFoundError", _no_bcc)),
    ("TracefsFormatError", "a tracepoint `format` file with `ID: nope`",
     "report it: the kernel's format changed", _raises(
         "TracefsFormatError",
         lambda: __import__("ebpfhooks.kernel.tracefs", fromlist=["x"]).parse_format(
             "name: x\nID: nope\n"))),
    ("KallsymsFormatError", "kallsyms text `zzzz T foo`", "report it with the line",
     _raises("KallsymsFormatError",
             lambda: __import__("ebpfhooks.kernel.kallsyms", fromlist=["x"]).parse_kallsyms(
                 "zzzz T foo\n"))),
    ("LdCacheFormatError", "an `/etc/ld.so.cache` holding `garbage`", "run `ldconfig`",
     _raises("LdCacheFormatError",
             lambda: __import__("ebpfhooks.elf.ldcache", fromlist=["x"]).parse_ld_so_cache(
                 b"garbage"))),
    ("BtfFormatError", "BTF bytes `nope`", "report it: /sys/kernel/btf/vmlinux is not BTF",
     _raises("BtfFormatError",
             lambda: __import__("ebpfhooks.kernel.btf", fromlist=["x"]).parse_btf(b"nope"))),
    ("IpCommandError", "`ip -json` output `nope`", "install iproute2",
     _raises("IpCommandError",
             lambda: __import__("ebpfhooks.kernel.netdev", fromlist=["x"]).parse_xdp_prog_id(
                 "nope"))),
]

#: Base classes: never raised themselves.
ABSTRACT = {"EbpfHooksError", "HookNotFoundError"}
#: Raised only when two strong definitions collide: no file on the machine has one.
NOT_SHOWN = {"AmbiguousSymbolError": "two strong definitions of one name, or several "
             ".isra clones: the message lists them; name one exactly"}


def _cell(text: str) -> str:
    text = text.replace("|", "\\|")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    # keep the caret under its column: leading spaces become non-breaking
    lines = [(len(ln) - len(ln.lstrip(" "))) * "&nbsp;" + ln.lstrip(" ") for ln in lines]
    shown = "<br>".join(lines)
    return shown if len(shown) <= 400 else shown[:400] + "..."


def render() -> str:
    rows = ["| error | builtin | example input | message | fix |", "|---|---|---|---|---|"]
    for name, example, fix, produce in CASES:
        cls = getattr(errors_module, name)
        found = [b for b in cls.__mro__ if b.__module__ == "builtins"
                 and b not in (Exception, BaseException, object)]
        # the builtins it refines, most specific only (PermissionError, not also OSError)
        builtin = ", ".join(f"`{b.__name__}`" for b in found
                            if not any(o is not b and issubclass(o, b) for o in found))
        rows.append(f"| `{name}` | {builtin} | {example} | {_cell(produce())} | {fix} |")
    for name, what in NOT_SHOWN.items():
        rows.append(f"| `{name}` | `LookupError` | {what} | | |")
    return "\n".join(rows)


def test_every_error_class_has_a_row() -> None:
    names = {n for n, c in inspect.getmembers(errors_module, inspect.isclass)
             if issubclass(c, EbpfHooksError)}
    covered = {case[0] for case in CASES} | set(NOT_SHOWN) | ABSTRACT
    assert names - covered == set()


def test_every_error_is_importable_from_the_package() -> None:
    """Every error a public call can raise is ``ebpfhooks.<Name>`` (and in its __all__)."""
    import ebpfhooks

    names = {n for n, c in inspect.getmembers(errors_module, inspect.isclass)
             if issubclass(c, EbpfHooksError)} | {"NoAlternativeError"}
    for name in sorted(names):
        assert name in ebpfhooks.__all__, name
        assert issubclass(getattr(ebpfhooks, name), EbpfHooksError), name
    in_doc = set(re.findall(r"^\| `(\w+Error)` \|", DOC.read_text(), re.M))
    assert in_doc and in_doc <= set(ebpfhooks.__all__)


@pytest.mark.skipif(os.geteuid() != 0, reason="the table is generated as root (CI is root)")
def test_errors_md_table_matches_the_real_messages() -> None:
    table = render()
    text = DOC.read_text()
    assert START in text and END in text, "docs/errors.md lost its table markers"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table}\n{END}{tail}"
    if os.environ.get("EBPFHOOKS_WRITE_DOCS"):
        DOC.write_text(new)
    assert new == text, ("docs/errors.md is out of date: regenerate with "
                         "EBPFHOOKS_WRITE_DOCS=1 pytest tests/test_errors_doc.py")


def test_hidden_kallsyms_addresses_are_shown_as_hidden() -> None:
    from ebpfhooks.kernel.kallsyms import parse_kallsyms

    syms = parse_kallsyms((FIXTURES / "kallsyms_hidden.txt").read_text())
    assert syms and all(s.real_address is None for s in syms)
    assert "(hidden)" in str(syms[0])
