"""Kernel tracepoints with their raw arguments: :class:`RawTracepoint`."""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, TracepointNotFoundError
from ebpfhooks.hooks.base import (
    Found,
    Hook,
    Pattern,
    Resolution,
    module_event_target,
    optional_text,
    text_field,
)
from ebpfhooks.names import Problem, check_module, check_trace_name

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body, SpecText

__all__ = ["RawTracepoint", "RawTracepointResolution", "raw_tracepoint_names"]

_PER_SYSCALL_HINT = ("per-syscall events are not raw tracepoints: use rawtracepoint:sys_enter "
                     "(args[1] is the syscall number) or tracepoint:syscalls:")


def _event(name: str) -> Problem | None:
    return check_trace_name(name, "raw tracepoint name")


class RawTracepointResolution(Resolution):
    """A raw tracepoint BPF can open (its kernel BTF ``btf_trace_`` type, or kallsyms)."""

    __slots__ = ("module",)
    _fields = ("hook", "note", "module")
    module: str | None

    def __init__(self, hook: Hook, *, module: str | None = None,
                 note: str | None = None) -> None:
        self._init(hook=hook, note=note, module=module)

    def describe(self) -> str:
        return f"{self.hook}" + (f" [{self.module}]" if self.module else "")


class RawTracepoint(Hook):
    """A tracepoint with its raw arguments: ``rawtracepoint[:module]:event``.

    >>> str(RawTracepoint("sched_switch"))
    'rawtracepoint:sched_switch'

    The program gets ``struct bpf_raw_tracepoint_args *ctx`` whose ``args[]``
    are the tracepoint's C arguments, unparsed, hence cheaper than a
    tracepoint. Names are the kernel's tracepoint names without category;
    the per-syscall events (``sys_enter_openat``) are not raw tracepoints,
    ``sys_enter``/``sys_exit`` are. Minimum kernel 4.17.
    """

    __slots__ = ("event", "module")
    _fields = ("event", "module")
    event: str
    module: str | None

    kind = "rawtracepoint"
    bcc_prefix = "raw_tracepoint"
    aliases = ("rt", "raw_tracepoint")
    libbpf = ("raw_tp",)
    example = "sched_switch"
    target_noun = "raw tracepoint"
    target_shape = "EVENT"
    bare = True
    hooks = "kernel tracepoint (arguments not parsed)"
    fires = "when the kernel passes the tracepoint"
    attach_via = "bcc attach_raw_tracepoint (BPF_RAW_TRACEPOINT_OPEN)"
    bcc_entry = "attach_raw_tracepoint"
    stable = True
    overhead = "low"
    min_kernel = (4, 17)
    program_type = "RAW_TRACEPOINT"
    program_ctx = "struct bpf_raw_tracepoint_args *ctx"
    feature = "raw_tracepoints"
    capabilities = caps.TRACING

    def __init__(self, event: str, *, module: str | None = None) -> None:
        self._init(event=text_field(event, _event, "raw tracepoint name"),
                   module=optional_text(module, check_module, "kernel module"))

    def _target_names(self) -> tuple[str, str]:
        return self.event, self.event

    def spec(self) -> str:
        """``rawtracepoint:[module:]event`` (bpftrace's spelling)."""
        mod = f"{self.module}:" if self.module else ""
        return f"rawtracepoint:{mod}{self.event}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``[module ":"] event`` (libbpf's ``raw_tp/event`` takes no module)."""
        return module_event_target(cls, body, _event,
                                   expected=f"expected {cls.kind}:[module:]event")

    @classmethod
    def bare_pattern(cls, t: SpecText) -> Pattern:
        """A bare word is a raw tracepoint name pattern."""
        return Pattern(cls, module=None, event=t.name(0, len(t.text), _event))

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The ``btf_trace_*`` types of the kernel's BTF (exactly the names that attach);
        on a kernel without BTF the ``__traceiter_*`` symbols of /proc/kallsyms."""
        from ebpfhooks.spec import matcher

        mod_ok, ok = matcher(pattern["module"]), matcher(pattern["event"])
        assert ok is not None
        raws, source = raw_tracepoint_names()
        for mod, name in raws:
            if ok(name) and (mod_ok is None or (mod is not None and mod_ok(mod))):
                found.add(f"rawtracepoint:{mod}:{name}" if mod else f"rawtracepoint:{name}",
                          cls, name, module=mod)
        found.sources[cls.kind] = source

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` on kernels before raw tracepoints (4.17)."""
        self._require("raw tracepoint support",
                      "raw tracepoints (Linux 4.17)")

    def resolve(self) -> RawTracepointResolution:
        """Check BPF can open this raw tracepoint on the running kernel.

        The names come from the kernel's BTF (``btf_trace_NAME`` types, one per entry
        of the table ``BPF_RAW_TRACEPOINT_OPEN`` searches; see
        :mod:`ebpfhooks.kernel.rawtp`), or from /proc/kallsyms ``__traceiter_NAME``
        symbols on a kernel without BTF.

        >>> RawTracepoint("sched_switch").resolve().describe()  # doctest: +SKIP
        'rawtracepoint:sched_switch'

        Raises :class:`TracepointNotFoundError` with the closest names; for a
        tracepoint the kernel defines but does not give BPF (6.18's
        ``sched_set_state_tp``), it says so.
        """
        from ebpfhooks._util import close_matches
        from ebpfhooks.kernel.rawtp import homes as homes_of
        from ebpfhooks.kernel.rawtp import raw_tracepoints

        homes = homes_of(self.event)
        if homes is None:
            return self._resolve_kallsyms()
        for module in homes:
            if self.module is None or module == self.module:
                return RawTracepointResolution(self, module=module)
        known = raw_tracepoints() or []
        hint = "list raw tracepoints with: ebpfhooks list 'rawtracepoint:*PART*'"
        candidates = [f"rawtracepoint:{c}"
                      for c in close_matches(self.event, sorted({n for _, n in known}))]
        if self.event.startswith(("sys_enter_", "sys_exit_")):
            hint = _PER_SYSCALL_HINT + self.event
        elif homes:
            candidates = [RawTracepoint(self.event, module=m).spec() for m in homes]
            where = ", ".join(f"module {m}" if m else "vmlinux" for m in homes)
            hint = f"{self.event!r} is in {where}, not in module {self.module!r}"
        elif self._kernel_defines():
            candidates = []
            hint = (f"the kernel defines tracepoint {self.event!r} (__traceiter_{self.event} "
                    "in /proc/kallsyms) but does not export it to BPF (no btf_trace_ type, "
                    "no __bpf_raw_tp_map entry: opening it fails with ENOENT); use a "
                    "tracepoint: or kprobe: hook near it")
        raise TracepointNotFoundError(
            self.event,
            where="the raw tracepoints of the kernel's BTF (/sys/kernel/btf btf_trace_*)",
            candidates=candidates,
            hint=hint,
        )

    def _kernel_defines(self) -> bool:
        """Whether /proc/kallsyms has ``__traceiter_EVENT`` (an error path only: slow)."""
        from ebpfhooks.kernel.kallsyms import index

        try:
            return bool(index().lookup("__traceiter_" + self.event))
        except EbpfHooksError:
            return False

    def _resolve_kallsyms(self) -> RawTracepointResolution:
        """Without BTF: the kernel's ``__traceiter_``/``__tracepoint_`` symbols."""
        from ebpfhooks.kernel.kallsyms import index

        ks = index()
        for prefix in ("__traceiter_", "__tracepoint_"):
            entries = ks.lookup(prefix + self.event)
            if self.module is not None:
                entries = [e for e in entries if e.module == self.module]
            if entries:
                return RawTracepointResolution(self, module=entries[0].module)
        hint = "list raw tracepoints with: ebpfhooks list 'rawtracepoint:*PART*'"
        if self.event.startswith(("sys_enter_", "sys_exit_")):
            hint = _PER_SYSCALL_HINT + self.event
        candidates = [c[len("__traceiter_"):] for c in ks.close_matches("__traceiter_" + self.event)
                      if c.startswith("__traceiter_")]
        raise TracepointNotFoundError(
            self.event,
            where="the kernel's tracepoints (/proc/kallsyms __traceiter_*)",
            candidates=[f"rawtracepoint:{c}" for c in candidates],
            hint=hint,
        )

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Its ``__traceiter_`` symbol, the tracefs event of that name and each
        ``ctx->args[i]``'s C type from BTF."""
        from ebpfhooks.hooks.kprobe import ksym_dict, ksym_line
        from ebpfhooks.kernel.kallsyms import read, select
        from ebpfhooks.kernel.tracefs import list_tracepoints

        res = self.resolve()
        want, mod = "__traceiter_" + self.event, self.module
        syms = select(read(), want.__eq__, module=None if mod is None else mod.__eq__)
        facts["kallsyms"] = [ksym_dict(s) for s in syms]
        facts["module"] = res.module
        text.extend(f"    kallsyms: {ksym_line(s)}" for s in syms)
        events: list[str] | None
        try:
            events = [f"tracepoint:{c}:{e}" for c, e in list_tracepoints() if e == self.event]
        except EbpfHooksError as err:
            events = None
            text.append(f"    same tracepoint with parsed arguments: unknown ({err})")
        facts["tracepoint_events"] = events
        if events:
            text.append(f"    same tracepoint with parsed arguments: {', '.join(events)}")
        args = _raw_tracepoint_args(self.event) if res.module is None else None
        facts["args"] = args
        if args is None:
            text.append("    arguments: ctx->args[0..] are the tracepoint's C arguments "
                        "(TP_PROTO)")
        else:
            text.append(f"    arguments (BTF typedef btf_trace_{self.event}):")
            text.extend(f"        ctx->args[{i}]: {a}" for i, a in enumerate(args))

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        return _bcc.attach_raw_tracepoint(program.bpf, program.fn_name, self.event,
                                          what=str(self))


def raw_tracepoint_names() -> tuple[list[tuple[str | None, str]], str]:
    """(module, name) of every raw tracepoint BPF can open, and where they came from."""
    from ebpfhooks.kernel.rawtp import raw_tracepoints

    found = raw_tracepoints()
    if found is not None:
        return found, "/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE (btf_trace_* types)"
    from ebpfhooks.kernel.kallsyms import KALLSYMS_FILE, read, traceiters

    return (traceiters(read()),
            f"{KALLSYMS_FILE} (__traceiter_* symbols; the kernel has no BTF)")


def _raw_tracepoint_args(event: str) -> list[str] | None:
    """The C types of the raw tracepoint's args from vmlinux BTF, or ``None``."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import vmlinux_btf

    try:
        btf = vmlinux_btf()
        return None if btf is None else btf.raw_tracepoint_args(event)
    except BtfFormatError:
        return None
