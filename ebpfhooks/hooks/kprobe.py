"""Kernel function probes: :class:`Kprobe` (entry) and :class:`Kretprobe` (return).

Entry and return share one class family and one attach path
(:class:`KernelFunctionHook`); the return probe adds ``maxactive``, the entry
probe an ``offset``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

import attrs

from ebpfhooks import _bcc
from ebpfhooks.errors import (
    AmbiguousSymbolError,
    NotSupportedError,
    SpecError,
    SymbolNotFoundError,
)
from ebpfhooks.hooks._fields import non_negative, optional, validated
from ebpfhooks.hooks.base import Hook, Program, Resolution
from ebpfhooks.names import check_kernel_symbol, check_module

__all__ = ["KernelFunctionHook", "Kprobe", "KprobeResolution", "Kretprobe"]

#: Prefixes the kernel puts before a syscall's name in its entry function.
SYSCALL_PREFIXES = (
    "__x64_sys_", "__ia32_sys_", "__ia32_compat_sys_", "__x32_compat_sys_",
    "__arm64_sys_", "__arm64_compat_sys_", "__s390x_sys_", "__s390_sys_",
    "__riscv_sys_", "__se_sys_", "__do_sys_", "sys_",
)


@attrs.frozen
class KprobeResolution(Resolution):
    """A kernel function found in /proc/kallsyms.

    ``symbol`` is the name that will be probed (it may differ from the hook's:
    the syscall wrapper ``__x64_sys_openat`` for ``sys_openat``, a unique
    ``.isra.0`` clone), ``address`` its address (``None`` when kallsyms hides
    addresses), ``type`` the kallsyms type letter, ``module`` its module.
    """

    symbol: str = attrs.field(kw_only=True)
    address: int | None = attrs.field(kw_only=True)
    type: str = attrs.field(kw_only=True)
    module: str | None = attrs.field(kw_only=True, default=None)

    def describe(self) -> str:
        where = f"{self.address:#x}" if self.address is not None else "address hidden"
        mod = f" [{self.module}]" if self.module else ""
        return f"{self.hook} -> {self.symbol} ({self.type}, {where}){mod}"


@attrs.frozen
class KernelFunctionHook(Hook):
    """A probe on a kernel function: the shared half of kprobe and kretprobe.

    Minimum kernel: 4.1 (BPF programs on kprobes); needs CONFIG_KPROBES.
    """

    symbol: str = attrs.field(validator=validated(check_kernel_symbol, "kernel symbol"))
    module: str | None = attrs.field(
        default=None, kw_only=True, validator=optional(check_module, "kernel module")
    )

    hooks = "kernel function"
    bcc_entry = "attach_kprobe"
    stable = False
    overhead = "very low"
    min_kernel = (4, 1)
    program_type = "KPROBE"
    is_return: ClassVar[bool] = False

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel has no kprobes.

        The error names the missing feature and, where one exists, the stable
        tracepoint to use instead (the seed's advice).
        """
        self._require("kprobes", "kprobe support", "CONFIG_KPROBES",
                      lambda: stable_alternative(self.symbol, ret=self.is_return))

    def resolve(self) -> KprobeResolution:
        """Find the function in /proc/kallsyms, or the syscall wrapper or clone it means.

        >>> Kprobe("sys_openat").resolve()           # doctest: +SKIP
        KprobeResolution(... symbol='__x64_sys_openat' ...)

        Raises :class:`SymbolNotFoundError` with the closest names,
        :class:`AmbiguousSymbolError` when several clones match, and
        :class:`NotSupportedError` for a blacklisted function.
        """
        from ebpfhooks.kernel.kallsyms import kallsyms
        from ebpfhooks.kernel.tracefs import kprobe_blacklist

        ks = kallsyms()
        name = self.symbol
        note = None
        entries = [e for e in ks.lookup(name) if e.is_function]
        if self.module is not None:
            entries = [e for e in entries if e.module == self.module]
        if not entries:
            found = self._alternate_name(ks)
            if found is None:
                data = ks.lookup(name)
                hint = None
                if data and self.module is None:
                    hint = (f"{name} is a {data[0].type_description} symbol (type "
                            f"{data[0].type}), not a function: kprobes need type T or t")
                elif self.module is not None and ks.lookup(name):
                    mods = sorted({e.module or "vmlinux" for e in ks.lookup(name)})
                    hint = f"{name} is in {', '.join(mods)}, not in module {self.module}"
                raise SymbolNotFoundError(
                    name,
                    where="/proc/kallsyms" + (f" (module {self.module})" if self.module else ""),
                    candidates=[] if hint else ks.close_matches(name),
                    hint=hint or "list kernel functions with: ebpfhooks list --all 'kprobe:*PART*'",
                )
            name, note = found
            entries = [e for e in ks.lookup(name) if e.is_function]
        if name in kprobe_blacklist():
            raise NotSupportedError(
                f"{self} cannot attach: {name} is on the kernel's kprobe blacklist "
                "(<debugfs>/kprobes/blacklist): probing it could crash the kernel",
                missing="a function outside the kprobe blacklist",
                alternative=stable_alternative(self.symbol, ret=self.is_return),
            )
        entry = sorted(entries, key=lambda e: e.type != "T")[0]
        return KprobeResolution(
            self,
            symbol=name,
            address=None if ks.addresses_hidden else entry.address,
            type=entry.type,
            module=entry.module,
            note=note,
        )

    def _alternate_name(self, ks: object) -> tuple[str, str] | None:
        """The syscall wrapper or the unique compiler clone this name means, with a note."""
        from ebpfhooks.kernel.kallsyms import Kallsyms

        assert isinstance(ks, Kallsyms)
        name = self.symbol
        for prefix in SYSCALL_PREFIXES:
            if name.startswith(prefix):
                wrapper = ks.syscall_prefix() + name[len(prefix):]
                if wrapper != name and any(e.is_function for e in ks.lookup(wrapper)):
                    return wrapper, f"{name} is the syscall entry {wrapper} on this kernel"
                break
        clones = [v for v in ks.variants(name) if any(e.is_function for e in ks.lookup(v))]
        if len(clones) == 1:
            return clones[0], f"{name} is compiled as {clones[0]} on this kernel"
        if len(clones) > 1:
            raise AmbiguousSymbolError(
                f"kernel symbol {name!r} is not in /proc/kallsyms, but several compiler clones "
                f"are: {', '.join(clones)}; name one of them exactly "
                f"(e.g. {self.kind}:{clones[0]})"
            )
        return None

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        assert isinstance(resolution, KprobeResolution)
        detach = _bcc.attach_kprobe(
            program.bpf,
            program.fn_name,
            resolution.symbol,
            getattr(self, "offset", 0),
            ret=self.is_return,
            maxactive=getattr(self, "maxactive", 0),
            what=str(self),
        )
        return detach, None

    def _prefix(self) -> str:
        mod = f"{self.module}:" if self.module else ""
        return f"{self.kind}:{mod}{self.symbol}"


@attrs.frozen
class Kprobe(KernelFunctionHook):
    """Kernel function entry: ``kprobe:[module:]function[+offset]``.

    >>> Kprobe("do_sys_openat2")
    Kprobe(symbol='do_sys_openat2', module=None, offset=0)
    >>> str(Kprobe("vfs_read", 0x10))
    'kprobe:vfs_read+0x10'

    Fires when the kernel calls the function (at ``offset`` bytes into it).
    Unstable interface: functions are renamed and inlined between kernels;
    prefer a tracepoint when one exists. Minimum kernel 4.1, CONFIG_KPROBES.
    """

    offset: int = attrs.field(default=0, validator=non_negative("kprobe offset"))

    kind = "kprobe"
    fires = "at the start of a kernel function call"
    bcc_entry = "attach_kprobe"

    def spec(self) -> str:
        """``kprobe:[module:]symbol[+0xOFF]``."""
        return self._prefix() + (f"+{self.offset:#x}" if self.offset else "")


@attrs.frozen
class Kretprobe(KernelFunctionHook):
    """Kernel function return: ``kretprobe:[module:]function[maxactive=N]``.

    >>> str(Kretprobe("vfs_read", maxactive=64))
    'kretprobe:vfs_read[maxactive=64]'

    Fires when the function returns; ``PT_REGS_RC(ctx)`` is its return value.
    ``maxactive`` is how many calls may be in flight at once (0: the kernel's
    default). Minimum kernel 4.1, CONFIG_KPROBES.
    """

    maxactive: int = attrs.field(default=0, kw_only=True,
                                 validator=non_negative("kretprobe maxactive"))

    kind = "kretprobe"
    fires = "when a kernel function returns"
    bcc_entry = "attach_kretprobe"
    is_return = True

    @maxactive.validator
    def _check_maxactive(self, _attr: object, value: int) -> None:
        if value > 4096:  # KRETPROBE_MAXACTIVE_MAX
            raise SpecError(f"kretprobe maxactive {value} is above the kernel's limit 4096")

    def spec(self) -> str:
        """``kretprobe:[module:]symbol[[maxactive=N]]``."""
        return self._prefix() + (f"[maxactive={self.maxactive}]" if self.maxactive else "")


_CLONE_SUFFIX = re.compile(r"\.(isra|constprop|part|cold|llvm|lto_priv)(\.\d+)*$")


def _core_word(symbol: str) -> str:
    name = _CLONE_SUFFIX.sub("", symbol)
    for prefix in (*SYSCALL_PREFIXES, "do_sys_", "ksys_", "__do_", "do_", "__"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name


#: Kernel functions whose stable tracepoint is not named after them: (spec, why).
#: ``stable_alternative`` and ``ebpfhooks suggest`` both answer from it first.
KNOWN_STABLE: dict[str, tuple[str, str]] = {
    "tcp_connect": ("tracepoint:sock:inet_sock_set_state",
                    "fires on every TCP state change; an active connect is "
                    "newstate == TCP_SYN_SENT (what bcc's tcpstates/tcplife use)"),
    "tcp_v4_connect": ("tracepoint:sock:inet_sock_set_state",
                       "an IPv4 active connect is newstate == TCP_SYN_SENT, family AF_INET"),
    "tcp_v6_connect": ("tracepoint:sock:inet_sock_set_state",
                       "an IPv6 active connect is newstate == TCP_SYN_SENT, family AF_INET6"),
    "tcp_close": ("tracepoint:sock:inet_sock_set_state", "newstate == TCP_CLOSE"),
    "do_exit": ("tracepoint:sched:sched_process_exit", "fires as a task exits"),
    "wake_up_new_task": ("tracepoint:sched:sched_process_fork", "fires on fork/clone"),
    "finish_task_switch": ("tracepoint:sched:sched_switch", "fires on every context switch"),
    "exec_binprm": ("tracepoint:sched:sched_process_exec", "fires after a successful exec"),
}


def stable_alternative(symbol: str, *, ret: bool = False) -> str | None:
    """A stable tracepoint that observes what the kernel function ``symbol`` does, if any.

    >>> stable_alternative("do_sys_openat2")                 # doctest: +SKIP
    'tracepoint:syscalls:sys_enter_openat'
    >>> stable_alternative("do_sys_openat2", ret=True)       # doctest: +SKIP
    'tracepoint:syscalls:sys_exit_openat'

    Prefer the stable tracepoint. Looks in :data:`KNOWN_STABLE`
    (``do_exit`` -> ``sched:sched_process_exit``), then for a syscall tracepoint named
    after the function (trailing version digits dropped first: ``openat2`` ->
    ``openat``): the entry ``sys_enter_*`` for an entry probe, the return
    ``sys_exit_*`` (which carries the return value, ``args->ret``) for a return probe
    (``ret=True``); then a tracepoint event of the same name.
    Returns ``None`` when tracefs is not readable or nothing fits.
    """
    from ebpfhooks.errors import EbpfHooksError
    from ebpfhooks.kernel.tracefs import list_tracepoints

    try:
        tps = list_tracepoints()
    except (OSError, EbpfHooksError):
        return None
    have = set(tps)
    known = KNOWN_STABLE.get(symbol)
    if known is not None and tuple(known[0].split(":")[1:]) in have:
        return known[0]
    core = _core_word(symbol)
    words = [core.rstrip("0123456789"), core] if core.rstrip("0123456789") else [core]
    prefix = "sys_exit_" if ret else "sys_enter_"
    for word in words:
        if ("syscalls", f"{prefix}{word}") in have:
            return f"tracepoint:syscalls:{prefix}{word}"
    for cat, ev in tps:
        if ev in (symbol, core):
            return f"tracepoint:{cat}:{ev}"
    return None
