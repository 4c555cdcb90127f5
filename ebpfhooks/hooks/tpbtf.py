"""Kernel tracepoints with BTF-typed arguments: :class:`TpBtf` (libbpf's ``tp_btf``)."""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, TracepointNotFoundError
from ebpfhooks.hooks._btfprog import BtfResolution
from ebpfhooks.hooks.base import (
    Found,
    Hook,
    Pattern,
    module_event_target,
    optional_text,
    text_field,
)
from ebpfhooks.names import Problem, check_module, check_trace_name

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.base import Resolution
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["TpBtf", "tp_btf_arguments"]

_WHERE = ("the tracepoints of the kernel's BTF (btf_trace_* types in /sys/kernel/btf/vmlinux "
          "and /sys/kernel/btf/MODULE)")


def _event(name: str) -> Problem | None:
    return check_trace_name(name, "tracepoint name")


class TpBtf(Hook):
    """A tracepoint with BTF-typed arguments: ``tp_btf:[module:]event`` (libbpf
    ``tp_btf/event``).

    >>> str(TpBtf("sched_process_exec")), str(TpBtf.from_spec("tp_btf/sched_switch"))
    ('tp_btf:sched_process_exec', 'tp_btf:sched_switch')

    The same events as a raw tracepoint (names without category; ``sys_enter``, not
    ``sys_enter_openat``), loaded as a ``BPF_PROG_TYPE_TRACING`` program at the
    ``btf_trace_EVENT`` type of the kernel's BTF: the verifier knows each argument's C
    type, so the program reads them directly (``u64 *ctx``: ``ctx[i]`` is argument i;
    bcc's ``BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm
    *bprm)`` names them) and follows typed pointers without ``bpf_probe_read``.
    No BPF trampoline is needed. Minimum kernel 5.5 with BTF (CONFIG_DEBUG_INFO_BTF);
    tracepoints of modules 5.11.
    """

    __slots__ = ("event", "module")
    _fields = ("event", "module")
    event: str
    module: str | None

    kind = "tp_btf"
    bcc_prefix = "tp_btf"
    example = "sched_process_exec"
    target_noun = "tracepoint"
    target_shape = "EVENT"
    hooks = "kernel tracepoint (arguments typed by BTF)"
    fires = "when the kernel passes the tracepoint"
    attach_via = ("BPF_PROG_LOAD of bcc's compiled function (TRACING, BPF_TRACE_RAW_TP, "
                  "attach_btf_id of btf_trace_EVENT) + BPF_RAW_TRACEPOINT_OPEN")
    bcc_entry = "attach_raw_tracepoint"
    stable = True
    overhead = "low"
    min_kernel = (5, 5)
    program_type = "TRACING"
    program_ctx = "u64 *ctx"
    feature = "btf"
    capabilities = caps.TRACING

    def __init__(self, event: str, *, module: str | None = None) -> None:
        self._init(event=text_field(event, _event, "tracepoint name"),
                   module=optional_text(module, check_module, "kernel module"))

    def _target_names(self) -> tuple[str, str]:
        return self.event, self.event

    def spec(self) -> str:
        """``tp_btf:[module:]event``."""
        mod = f"{self.module}:" if self.module else ""
        return f"tp_btf:{mod}{self.event}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``[module ":"] event`` (libbpf's ``tp_btf/event`` takes no module: libbpf
        finds it in vmlinux or a module itself)."""
        return module_event_target(
            cls, body, _event, libbpf_module="libbpf's tp_btf/ form takes no module",
            expected="expected tp_btf:[module:]event (no category: tp_btf:sched_switch)")

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The ``btf_trace_*`` types of the kernel's BTF (vmlinux's and the modules'):
        exactly the tracepoints a tp_btf program can be loaded at."""
        from ebpfhooks.kernel.rawtp import raw_tracepoints
        from ebpfhooks.spec import matcher

        mod_ok, ok = matcher(pattern["module"]), matcher(pattern["event"])
        assert ok is not None
        names = raw_tracepoints()
        if names is None:
            found.note("tp_btf hooks not listed: the kernel publishes no BTF "
                       "(/sys/kernel/btf/vmlinux); rawtracepoint: hooks need none")
            names = []
        for mod, name in names:
            if ok(name) and (mod_ok is None or (mod is not None and mod_ok(mod))):
                found.add(f"tp_btf:{mod}:{name}" if mod else f"tp_btf:{name}",
                          cls, name, module=mod)
        found.sources[cls.kind] = ("/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE "
                                   "(btf_trace_* types)")

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel publishes no BTF; the raw
        tracepoint of the same name is the alternative."""
        self._require("BTF (/sys/kernel/btf/vmlinux), which tp_btf programs are typed by",
                      "kernel BTF (CONFIG_DEBUG_INFO_BTF, kernel 5.5)",
                      lambda: f"rawtracepoint:{self.event}")

    def resolve(self) -> BtfResolution:
        """Find the ``btf_trace_EVENT`` typedef in the kernel's BTF (vmlinux, else the
        modules'): its type id is what the program is loaded with.

        >>> TpBtf("sched_process_exec").resolve()        # doctest: +SKIP
        BtfResolution(... name='btf_trace_sched_process_exec', kind='TYPEDEF', ...)

        Raises :class:`TracepointNotFoundError` with the closest names.
        """
        from ebpfhooks.kernel.btf import tp_btf_id

        found = tp_btf_id(self.event, self.module)
        if found is None:
            raise self._not_found()
        return BtfResolution(self, name=f"btf_trace_{self.event}", kind="TYPEDEF",
                             type_id=found.type_id, btf=found.btf)

    def _not_found(self) -> TracepointNotFoundError:
        from ebpfhooks._util import close_matches
        from ebpfhooks.kernel.rawtp import homes, raw_tracepoints

        known = raw_tracepoints() or []
        hint = "list them with: ebpfhooks list 'tp_btf:*PART*'"
        candidates = [f"tp_btf:{c}" for c in
                      close_matches(self.event, sorted({n for _, n in known}))]
        where_found = homes(self.event) or ()
        if not known:
            candidates = []
            hint = ("the kernel publishes no BTF (/sys/kernel/btf/vmlinux), which tp_btf "
                    "needs; use rawtracepoint: or tracepoint: hooks")
        elif self.event.startswith(("sys_enter_", "sys_exit_")):
            hint = ("per-syscall events are not raw tracepoints: use tp_btf:sys_enter "
                    f"(ctx[1] is the syscall number) or tracepoint:syscalls:{self.event}")
        elif where_found:
            candidates = [TpBtf(self.event, module=m).spec() for m in where_found]
            where = ", ".join(f"module {m}" if m else "vmlinux" for m in where_found)
            hint = f"{self.event!r} is in {where}, not in module {self.module!r}"
        return TracepointNotFoundError(self.event, where=_WHERE, candidates=candidates,
                                       hint=hint)

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Its BTF typedef (type id and object), each argument's C type (``ctx[i]``)
        and the tracefs event of the same name."""
        from ebpfhooks.kernel.tracefs import list_tracepoints

        res = self.resolve()
        facts["btf"] = {"name": res.name, "type_id": res.type_id, "object": res.btf}
        text.append(f"    BTF: TYPEDEF {res.name}, type id {res.type_id} in {res.btf}")
        args = tp_btf_arguments(res)
        facts["args"] = None if args is None else [
            {"index": i, "type": t, "read": f"ctx[{i}]"} for i, t in enumerate(args)]
        if args is None:
            text.append("    arguments: unknown (the BTF typedef could not be read)")
        else:
            text.append("    the program: int fn(u64 *ctx), or bcc's BPF_PROG(fn, ...) "
                        "naming the arguments below")
            text.extend(f"        ctx[{i}]: {t}" for i, t in enumerate(args))
            declared = ", ".join(f"{t}{'' if t.endswith('*') else ' '}arg{i}"
                                 for i, t in enumerate(args))
            facts["bpf_prog"] = (f"BPF_PROG(on_{self.event}, {declared})" if declared
                                 else f"BPF_PROG(on_{self.event})")
            text.append(f"    e.g.: {facts['bpf_prog']}")
        events: list[str] | None
        try:
            events = [f"tracepoint:{c}:{e}" for c, e in list_tracepoints() if e == self.event]
        except EbpfHooksError as err:
            events = None
            text.append(f"    same tracepoint with parsed arguments: unknown ({err})")
        facts["tracepoint_events"] = events
        if events:
            text.append(f"    same tracepoint with parsed arguments: {', '.join(events)}")
        facts["raw_tracepoint"] = f"rawtracepoint:{self.event}"

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import bpfsys
        from ebpfhooks.hooks import _btfprog

        assert isinstance(resolution, BtfResolution)
        return _btfprog.attach(program, resolution, prog_type=bpfsys.BPF_PROG_TYPE_TRACING,
                               attach_type=bpfsys.BPF_TRACE_RAW_TP)


def tp_btf_arguments(res: BtfResolution) -> list[str] | None:
    """The C types of a resolved tp_btf tracepoint's arguments (``ctx[i]``), or ``None``."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import module_btf, vmlinux_btf

    hook = res.hook
    assert isinstance(hook, TpBtf)
    try:
        btf = vmlinux_btf() if res.btf == "vmlinux" else module_btf(res.btf)
        return None if btf is None else btf.raw_tracepoint_args(hook.event)
    except BtfFormatError:
        return None
