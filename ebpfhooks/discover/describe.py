"""Describing one hook (``bpftrace -lv``, and more): :func:`info`."""

from __future__ import annotations

from ebpfhooks.errors import HookPermissionError, NotSupportedError, SpecError

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from ebpfhooks.hooks.base import Hook

__all__ = ["HookInfo", "info"]


class HookInfo:
    """What one hook is on this system: its kind's facts plus what was found for it.

    ``spec`` is the canonical spec, ``kind`` the kind, ``facts`` a JSON-ready dict (the
    kind's details: format fields, kallsyms records, ELF symbol...), ``attachable``
    whether this kernel/machine can attach it and ``problem`` why not.
    ``str(info)`` is the readable report.
    """

    __slots__ = ("attachable", "facts", "kind", "problem", "spec", "text")

    def __init__(self, spec: str, kind: str, facts: dict[str, Any], text: list[str],
                 attachable: bool | None, problem: str | None) -> None:
        self.spec = spec
        self.kind = kind
        self.facts = facts
        self.text = text
        self.attachable = attachable
        self.problem = problem

    def __repr__(self) -> str:
        state = {True: "attachable", False: "not attachable", None: "attachable?"}
        return f"<HookInfo {self.spec} ({state[self.attachable]})>"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"spec": self.spec, "kind": self.kind, "attachable": self.attachable,
                "problem": self.problem, **self.facts}

    def __str__(self) -> str:
        return "\n".join(self.text)


def _attachable(hook: Hook) -> tuple[bool | None, str | None]:
    try:
        hook.check_supported()
    except NotSupportedError as err:
        return False, str(err).splitlines()[0]
    return True, None


def _unprivileged_note(hook: Hook) -> str:
    """``""``, or what this process lacks to attach ``hook`` itself."""
    try:
        hook.check_privileges()
    except HookPermissionError:
        needs = " or ".join("+".join(sorted(caps)) for caps in hook.capabilities)
        return f", by root ({needs}): not by this process, which lacks them"
    return ""


def info(spec: str) -> HookInfo:
    """Describe one hook (``bpftrace -lv``, and more).

    >>> print(info("tracepoint:sched:sched_switch"))  # doctest: +SKIP
    tracepoint:sched:sched_switch  (stable; ID 372; /sys/kernel/tracing/events/...)
        char prev_comm[16]            offset 8    size 16  unsigned
        ...

    The head says what the kind is (stable or not, when it fires, the minimum kernel,
    how ebpfhooks attaches it); then the kind's own facts (``Hook.info_facts``):

    - tracepoint: the parsed ``format`` (ID, each field's type, offset, size and
      signedness, the print fmt);
    - kprobe/kretprobe: its /proc/kallsyms record(s) (address, type, module), whether
      it is in ``available_filter_functions`` and on the kprobe blacklist, the stable
      alternative, and its C signature from BTF (/sys/kernel/btf/vmlinux) where the
      kernel has one;
    - rawtracepoint: its ``__traceiter_`` symbol, the tracefs event of that name, and each
      ``ctx->args[i]``'s C type from BTF;
    - uprobe/uretprobe: file, symbol, virtual address, file offset, size, binding,
      type, version;
    - xdp/raw_socket: the interface index and any XDP program already attached;
    - fentry/fexit: the BTF FUNC (type id, vmlinux or module), the C signature, each
      argument as the program reads it (``ctx[i]``) and, for fexit, the return value
      (``ctx[N]``), the ``BPF_PROG`` line, ``available_filter_functions`` and the
      stable alternative;
    - tp_btf: the ``btf_trace_`` typedef, each argument's C type (``ctx[i]``) and the
      tracefs event of that name;
    - lsm: the ``bpf_lsm_`` FUNC, the hook's arguments and what its return value does.

    Raises :class:`SpecError` (wildcards: use :func:`ebpfhooks.list_hooks`) and the
    lookup errors of the hook's ``resolve()`` for a missing tracepoint, binary or
    interface.
    """
    from ebpfhooks.hooks import parse
    from ebpfhooks.names import WILDCARDS
    from ebpfhooks.spec import has_wildcard

    if isinstance(spec, str) and has_wildcard(spec):
        raise SpecError(
            "info describes one hook; the spec has a wildcard", spec=spec,
            column=min(i for i, ch in enumerate(spec) if ch in WILDCARDS),
            hint=f"list the matches first: ebpfhooks list '{spec}'",
        )
    hook = parse(spec)
    attachable, problem = _attachable(hook)
    head = (f"{hook}  ({'stable' if hook.stable else 'unstable'} interface; fires "
            f"{hook.fires}; minimum kernel {hook.min_kernel[0]}.{hook.min_kernel[1]})")
    facts: dict[str, Any] = {
        "stable": hook.stable, "fires": hook.fires, "attach_via": hook.attach_via,
        "bcc_entry": hook.bcc_entry, "program_type": hook.program_type,
        "overhead": hook.overhead, "min_kernel": ".".join(map(str, hook.min_kernel)),
    }
    text = [head, f"    attached through: {hook.attach_via}"]
    hook.info_facts(facts, text)
    text.append(f"    attachable here: {'yes' if attachable else 'no: ' + str(problem)}"
                + (_unprivileged_note(hook) if attachable else ""))
    return HookInfo(str(hook), hook.kind, facts, text, attachable, problem)
