"""Can this machine attach each hook kind, and if not, what fixes it? (``ebpfhooks doctor``)

>>> import ebpfhooks
>>> facts = ebpfhooks.features()                         # doctest: +SKIP
>>> facts["tracefs"].status.value, facts["kprobes"].fix   # doctest: +SKIP
('yes', 'boot a kernel built with CONFIG_KPROBES=y; ...')
>>> print(report().render())                             # doctest: +SKIP

Every check is a :class:`ebpfhooks.kernel.features.Feature`: ``yes``, ``no`` or
``unknown`` (could not tell), the reason, and the command that fixes a ``no``.
Nothing here loads a BPF program; bcc is imported only to read its version.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ebpfhooks.errors import EbpfHooksError, HookPermissionError
from ebpfhooks.kernel import features as _features
from ebpfhooks.kernel.features import Feature, FeatureStatus

if TYPE_CHECKING:
    from ebpfhooks.hooks.base import Hook

__all__ = ["Report", "features", "fix", "kinds", "report"]

_YES, _NO, _UNKNOWN = FeatureStatus.YES, FeatureStatus.NO, FeatureStatus.UNKNOWN


def _privileges() -> Feature:
    from ebpfhooks import caps as needs

    try:
        have = _features.capabilities()
    except (OSError, ValueError) as err:
        return Feature("privileges", _UNKNOWN, f"cannot read capabilities: {err}")
    who = "root" if _features.is_root() else f"uid {os.geteuid()}"
    missing = [f"{'+'.join(lacking)} ({what})" for what, table in (
        ("tracing", needs.TRACING), ("XDP", needs.NET), ("raw sockets", needs.RAW_SOCKET))
        if (lacking := needs.missing(table, have))]
    if not missing:
        return Feature("privileges", _YES, f"{who} with the capabilities every kind needs")
    return Feature("privileges", _NO, f"{who} lacks {', '.join(missing)}",
                   "run as root: sudo ebpfhooks ... (or setcap cap_bpf,cap_perfmon,"
                   "cap_net_admin,cap_net_raw+ep on the interpreter)")


def _bcc() -> Feature:
    from ebpfhooks import _bcc
    from ebpfhooks._bccshim import TESTED

    try:
        version = _bcc.version()
    except EbpfHooksError as err:  # importable, but lacks what ebpfhooks uses
        return Feature("bcc", _NO, str(err), "apt-get install python3-bpfcc (Debian/Ubuntu)")
    if version is None:
        return Feature("bcc", _NO, "bcc's Python module is not importable",
                       "apt-get install python3-bpfcc (Debian/Ubuntu) or dnf install "
                       "python3-bcc; use a venv made with --system-site-packages")
    tested = "" if version.startswith(TESTED) else f" (ebpfhooks is tested with bcc " \
        f"{', '.join(TESTED)})"
    return Feature("bcc", _YES, f"bcc {version} importable{tested}")


def _tracefs() -> Feature:
    from ebpfhooks.kernel import mounts

    try:
        root = mounts.tracefs_root()
    except HookPermissionError:
        where = mounts.mounted_tracefs()
        return Feature("tracefs", _NO, f"mounted at {where}, but readable by root only: this "
                       f"process (uid {os.geteuid()}) cannot list or resolve tracepoints",
                       "run as root (sudo ebpfhooks ...), or give the process "
                       "CAP_DAC_READ_SEARCH")
    except EbpfHooksError:
        return Feature("tracefs", _NO, "tracefs is not mounted (tracepoints, uprobes and "
                       "kprobes need it)", "ebpfhooks doctor --fix  (or: mount -t tracefs "
                       "tracefs /sys/kernel/tracing)")
    if not os.access(root / "available_events", os.R_OK):
        return Feature("tracefs", _NO, f"{root} is mounted but not readable",
                       "run as root")
    return Feature("tracefs", _YES, f"mounted at {root}")


def _debugfs() -> Feature:
    from ebpfhooks.kernel import tracefs

    root = tracefs.debugfs_root()
    if root is None:
        return Feature("debugfs", _NO, "debugfs is not mounted (the kprobe blacklist and "
                       "older tools' tracing paths live there)",
                       "ebpfhooks doctor --fix  (or: mount -t debugfs debugfs /sys/kernel/debug)")
    return Feature("debugfs", _YES, f"mounted at {root}")


def features() -> dict[str, Feature]:
    """Every fact ``doctor`` checks, as data: ``{name: Feature}`` in display order.

    >>> sorted(features())[:3]  # doctest: +SKIP
    ['bcc', 'bpf_link', 'btf']

    Names: privileges, bcc, kernel_headers, tracefs, debugfs, kprobes, uprobes,
    raw_tracepoints, xdp, bpf_link, btf, kptr_restrict, unprivileged_bpf, lockdown.
    Each is a :class:`ebpfhooks.kernel.features.Feature` (``status`` yes/no/unknown,
    ``reason``, ``fix``).
    """
    out = {
        "privileges": _privileges(),
        "bcc": _bcc(),
        "kernel_headers": _features.kernel_headers(),
        "tracefs": _tracefs(),
        "debugfs": _debugfs(),
    }
    out.update(_features.features())
    out["kptr_restrict"] = _features.kptr_restrict()
    unpriv = _features.unprivileged_bpf()
    if unpriv.status is _NO and out["privileges"].status is _YES:
        unpriv = Feature(unpriv.name, _NO, unpriv.reason + "; harmless here: this process "
                         "is privileged", unpriv.fix)
    out["unprivileged_bpf"] = unpriv
    out["lockdown"] = _features.lockdown()
    return out


def kinds(facts: dict[str, Feature] | None = None) -> dict[str, Feature]:
    """Whether each kind can attach here, from :func:`features`.

    A kind is ``no`` when any check it needs is ``no`` (the first such check's reason
    and fix are given), ``unknown`` when one is unknown, else ``yes``.

    >>> kinds()["tracepoint"].status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>
    """
    from ebpfhooks.hooks import KINDS

    facts = facts if facts is not None else features()
    out: dict[str, Feature] = {}
    for cls in KINDS:
        kind = cls.kind
        checks = [facts[n] for n in ("privileges", "bcc", cls.feature) if n in facts]
        # a feature that is not one of doctor's checks (BPF trampolines, the BPF LSM, a
        # CPU PMU): the kind's own check decides, in one line
        own = [cls.feature] if cls.feature and cls.feature not in facts else []
        bad = next((c for c in checks if c.status is _NO), None)
        unknown = next((c for c in checks if c.status is _UNKNOWN), None)
        if bad is not None:
            out[kind] = Feature(kind, _NO, f"needs {bad.name}, which is 'no' (see above)",
                                bad.fix)
        elif unknown is not None:
            out[kind] = Feature(kind, _UNKNOWN,
                                f"needs {unknown.name}, which could not be checked", unknown.fix)
        else:
            out[kind] = Feature(kind, _YES,
                                ", ".join([*(c.name for c in checks), *own]) + " ok")
        if own and out[kind].status is not _NO:
            itself = _kind_itself(cls)
            if itself is not None:  # (a Feature is falsy unless its status is yes)
                out[kind] = itself
    instead = {
        "kprobe": "use a tracepoint instead: `ebpfhooks suggest WORD` names the stable one "
                  "(a syscall's entry: tracepoint:syscalls:sys_enter_*)",
        "kretprobe": "use a tracepoint instead: `ebpfhooks suggest --return WORD` names the "
                     "stable one (a syscall's return value: tracepoint:syscalls:sys_exit_*)",
    }
    for kind, fix_text in instead.items():
        old = out[kind]
        if old.status is _NO and facts["kprobes"].status is _NO:
            out[kind] = Feature(kind, _NO, old.reason, fix_text)
    return out


def _kind_itself(cls: type[Hook]) -> Feature | None:
    """The kind's own check (``check_supported()`` of its example hook), for a kind whose
    kernel feature is not among the checks above (BPF trampolines, the BPF LSM ...)."""
    from ebpfhooks.errors import NotSupportedError
    from ebpfhooks.hooks import parse

    try:
        parse(f"{cls.kind}:{cls.example}").check_supported()
    except NotSupportedError as err:
        fix = (f"use {err.alternative} instead" if err.alternative
               else "`ebpfhooks suggest WORD` names what works here")
        return Feature(cls.kind, _NO, f"this kernel lacks {err.missing or 'what it needs'}", fix)
    except EbpfHooksError as err:
        return Feature(cls.kind, _UNKNOWN, f"could not be checked: {err}", None)
    return None


def fix() -> list[str]:
    """Mount tracefs and debugfs where they are missing (``mount -t tracefs``/``debugfs``).

    Returns one line per action. Raises :class:`ebpfhooks.HookPermissionError` when not
    allowed to mount and :class:`ebpfhooks.TracefsNotMountedError` when mount fails.

    >>> fix()  # doctest: +SKIP
    []
    """
    from ebpfhooks.kernel import tracefs

    done = tracefs.mount_tracefs()
    if done:
        _features.clear_cache()
    return done


class Report:
    """The doctor's findings: ``checks`` and ``kinds`` (name -> Feature), ``fixed`` actions."""

    __slots__ = ("checks", "fixed", "kinds", "system")

    def __init__(self, checks: dict[str, Feature], kinds: dict[str, Feature],
                 system: dict[str, str], fixed: list[str]) -> None:
        self.checks = checks
        self.kinds = kinds
        self.system = system
        self.fixed = fixed

    def __repr__(self) -> str:
        no = [n for n, f in self.kinds.items() if f.status is _NO]
        return f"<Report: kinds not attachable here: {', '.join(no) or 'none'}>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``system``, ``fixed``, ``checks`` and ``kinds`` with status/reason/fix."""
        def conv(fs: dict[str, Feature]) -> dict[str, Any]:
            return {n: {"status": f.status.value, "reason": f.reason, "fix": f.fix}
                    for n, f in fs.items()}
        return {"system": self.system, "fixed": self.fixed, "checks": conv(self.checks),
                "kinds": conv(self.kinds)}

    def render(self, width: int = 100) -> str:
        """One screen: a line per check and per kind, fixes under every ``no``."""
        lines = ["ebpfhooks doctor: " + ", ".join(f"{k} {v}" for k, v in self.system.items())]
        lines += [f"fixed: {action}" for action in self.fixed]
        for title, group in (("check", self.checks), ("kind", self.kinds)):
            lines.append("")
            lines.append(f"{title.upper():<17} {'STATUS':<8} WHY")
            for name, f in group.items():
                lines += _wrap(f"{name:<17} {f.status.value:<8} ", f.reason, width)
                if f.fix and f.status is not _YES:
                    lines += _wrap(" " * 27 + "fix: ", f.fix, width)
        return "\n".join(lines)


def _wrap(head: str, text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=head,
                         subsequent_indent=" " * (len(head) + 2), break_on_hyphens=False)


def report(*, do_fix: bool = False) -> Report:
    """Run every check (after mounting tracefs/debugfs when ``do_fix``) and return a report.

    >>> report().kinds["uprobe"].status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>
    """
    fixed: list[str] = []
    if do_fix:
        fixed = fix() or ["nothing to fix: tracefs and debugfs were already mounted"]
    checks = features()
    from ebpfhooks.cleanup import doctor_check  # stale tracefs events, orphaned netlink XDP

    checks["no_leftovers"] = doctor_check()
    system = {"kernel": os.uname().release, "machine": os.uname().machine,
              "uid": str(os.geteuid())}
    return Report(checks, kinds(checks), system, fixed)
