"""Kernel tracepoints: :class:`Tracepoint` (arguments parsed) and :class:`RawTracepoint`."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ebpfhooks import _bcc
from ebpfhooks._util import close_matches
from ebpfhooks.errors import EbpfHooksError, TracepointNotFoundError
from ebpfhooks.hooks._fields import optional, validated
from ebpfhooks.hooks.base import Hook, Program, Resolution
from ebpfhooks.names import check_module, check_trace_name

__all__ = ["RawTracepoint", "RawTracepointResolution", "Tracepoint", "TracepointResolution"]


@attrs.frozen
class TracepointResolution(Resolution):
    """A tracepoint present in tracefs; ``path`` is its events directory."""

    path: str = attrs.field(kw_only=True)

    def describe(self) -> str:
        return f"{self.hook} -> {self.path}"


@attrs.frozen
class Tracepoint(Hook):
    """A kernel tracepoint with parsed arguments: ``tracepoint:category:event``.

    >>> hook = Tracepoint("syscalls", "sys_enter_openat")
    >>> str(hook)
    'tracepoint:syscalls:sys_enter_openat'

    Fires each time the kernel passes the tracepoint; bcc builds the argument
    struct from the event's tracefs ``format`` file: name the function freely and
    give it that struct
    (``int on_open(struct tracepoint__syscalls__sys_enter_openat *args) { ...
    args->filename ... }``). Not ``TRACEPOINT_PROBE``: bcc attaches those itself
    at compile time, so no :class:`ebpfhooks.Link` could own them.
    A stable interface: prefer it over a kprobe when both exist.
    Minimum kernel 4.7.
    """

    category: str = attrs.field(validator=validated(check_trace_name, "tracepoint category"))
    event: str = attrs.field(validator=validated(check_trace_name, "tracepoint event"))

    kind = "tracepoint"
    hooks = "kernel tracepoint"
    fires = "when the kernel passes the tracepoint"
    bcc_entry = "attach_tracepoint"
    stable = True
    overhead = "moderate"
    min_kernel = (4, 7)
    program_type = "TRACEPOINT"

    def spec(self) -> str:
        """``tracepoint:category:event``."""
        return f"tracepoint:{self.category}:{self.event}"

    def resolve(self) -> TracepointResolution:
        """Check the event exists in tracefs.

        Raises :class:`TracepointNotFoundError` with the closest events, or
        :class:`ebpfhooks.TracefsNotMountedError` saying how to mount tracefs.
        """
        from ebpfhooks._util import close_matches
        from ebpfhooks.kernel.tracefs import list_tracepoints, tracefs_root, tracepoint_exists

        root = tracefs_root()
        if tracepoint_exists(self.category, self.event):
            path = root / "events" / self.category / self.event
            return TracepointResolution(self, path=str(path))
        names = [f"{c}:{e}" for c, e in list_tracepoints()]
        same_cat = [n for n in names if n.startswith(self.category + ":")]
        wanted = f"{self.category}:{self.event}"
        candidates = close_matches(wanted, same_cat) or close_matches(wanted, names)
        raise TracepointNotFoundError(
            wanted,
            where=f"{root}/events",
            candidates=[f"tracepoint:{c}" for c in candidates],
            hint="list tracepoints with: ebpfhooks list 'tracepoint:*PART*'",
        )

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        detach = _bcc.attach_tracepoint(
            program.bpf, program.fn_name, self.category, self.event, what=str(self)
        )
        return detach, None


_PER_SYSCALL_HINT = ("per-syscall events are not raw tracepoints: use rawtracepoint:sys_enter "
                     "(args[1] is the syscall number) or tracepoint:syscalls:")


@attrs.frozen
class RawTracepointResolution(Resolution):
    """A raw tracepoint BPF can open (its kernel BTF ``btf_trace_`` type, or kallsyms)."""

    module: str | None = attrs.field(kw_only=True, default=None)

    def describe(self) -> str:
        return f"{self.hook}" + (f" [{self.module}]" if self.module else "")


@attrs.frozen
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

    event: str = attrs.field(validator=validated(check_trace_name, "raw tracepoint name"))
    module: str | None = attrs.field(
        default=None, kw_only=True, validator=optional(check_module, "kernel module")
    )

    kind = "rawtracepoint"
    hooks = "kernel tracepoint (arguments not parsed)"
    fires = "when the kernel passes the tracepoint"
    bcc_entry = "attach_raw_tracepoint"
    stable = True
    overhead = "low"
    min_kernel = (4, 17)
    program_type = "RAW_TRACEPOINT"

    def spec(self) -> str:
        """``rawtracepoint:[module:]event`` (bpftrace's spelling)."""
        mod = f"{self.module}:" if self.module else ""
        return f"rawtracepoint:{mod}{self.event}"

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` on kernels before raw tracepoints (4.17)."""
        self._require("raw_tracepoints", "raw tracepoint support",
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
        from ebpfhooks.kernel.kallsyms import kallsyms

        try:
            return bool(kallsyms().lookup("__traceiter_" + self.event))
        except EbpfHooksError:
            return False

    def _resolve_kallsyms(self) -> RawTracepointResolution:
        """Without BTF: the kernel's ``__traceiter_``/``__tracepoint_`` symbols."""
        from ebpfhooks.kernel.kallsyms import kallsyms

        ks = kallsyms()
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

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        detach = _bcc.attach_raw_tracepoint(program.bpf, program.fn_name, self.event,
                                            what=str(self))
        return detach, None
