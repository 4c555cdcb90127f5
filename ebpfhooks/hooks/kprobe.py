"""Kernel function probes: :class:`Kprobe` (entry) and :class:`Kretprobe` (return).

Entry and return share one class family (:class:`KernelFunctionHook`): one grammar, one
listing source, one resolution and one attach path; the return probe adds
``maxactive``, the entry probe an ``offset``.
"""

from __future__ import annotations

import re

from ebpfhooks import caps
from ebpfhooks.errors import (
    AmbiguousSymbolError,
    EbpfHooksError,
    NotSupportedError,
    SpecError,
    SymbolNotFoundError,
)
from ebpfhooks.hooks.base import (
    Found,
    Hook,
    Pattern,
    Resolution,
    non_negative,
    optional_text,
    text_field,
)
from ebpfhooks.names import check_kernel_symbol, check_module

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.kernel.kallsyms import Kallsyms, KSym
    from ebpfhooks.spec import Body, SpecText

__all__ = [
    "KNOWN_STABLE",
    "SYSCALL_PREFIXES",
    "KernelFunctionHook",
    "Kprobe",
    "KprobeResolution",
    "Kretprobe",
    "stable_alternative",
]

#: Prefixes the kernel puts before a syscall's name in its entry function.
SYSCALL_PREFIXES = (
    "__x64_sys_", "__ia32_sys_", "__ia32_compat_sys_", "__x32_compat_sys_",
    "__arm64_sys_", "__arm64_compat_sys_", "__s390x_sys_", "__s390_sys_",
    "__riscv_sys_", "__se_sys_", "__do_sys_", "sys_",
)

KALLSYMS = "/proc/kallsyms"


class KprobeResolution(Resolution):
    """A kernel function found in /proc/kallsyms.

    ``symbol`` is the name that will be probed (it may differ from the hook's: the
    syscall wrapper ``__x64_sys_openat`` for ``sys_openat``, a unique ``.isra.0``
    clone), ``address`` its address (``None`` when kallsyms hides addresses), ``type``
    the kallsyms type letter, ``module`` its module.
    """

    __slots__ = ("address", "module", "symbol", "type")
    _fields = ("hook", "note", "symbol", "address", "type", "module")
    symbol: str
    address: int | None
    type: str
    module: str | None

    def __init__(self, hook: Hook, *, symbol: str, address: int | None, type: str,
                 module: str | None = None, note: str | None = None) -> None:
        self._init(hook=hook, note=note, symbol=symbol, address=address, type=type,
                   module=module)

    def describe(self) -> str:
        where = f"{self.address:#x}" if self.address is not None else "address hidden"
        mod = f" [{self.module}]" if self.module else ""
        return f"{self.hook} -> {self.symbol} ({self.type}, {where}){mod}"


class KernelFunctionHook(Hook):
    """A probe on a kernel function: the shared half of kprobe and kretprobe.

    Minimum kernel: 4.1 (BPF programs on kprobes); needs CONFIG_KPROBES.
    """

    __slots__ = ("module", "symbol")
    symbol: str
    module: str | None

    example = "do_sys_openat2"
    target_noun = "kernel function"
    target_shape = "FUNCTION"
    libbpf_bare = True
    bare = True
    hooks = "kernel function"
    attach_via = "bcc attach_kprobe (the kprobe PMU, else tracefs kprobe_events)"
    stable = False
    overhead = "very low"
    min_kernel = (4, 1)
    program_type = "KPROBE"
    program_ctx = "struct pt_regs *ctx"
    feature = "kprobes"
    capabilities = caps.TRACING
    is_return: ClassVar[bool] = False

    def _init_function(self, symbol: object, module: object) -> dict[str, Any]:
        return {"symbol": text_field(symbol, check_kernel_symbol, "kernel symbol"),
                "module": optional_text(module, check_module, "kernel module")}

    # -- grammar ---------------------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``[module ":"] function ["+" offset]`` (no offset on a return probe; libbpf's
        ``kprobe/function[+offset]`` takes no module; no offset in a pattern)."""
        t = body.t
        start, end = body.start, body.end
        module = None
        colon = body.rfind(":")
        if colon != -1:
            if body.libbpf:
                raise body.error(colon, colon + 1, "libbpf's kprobe/ form takes no module",
                                 f"write {cls.kind}:MODULE:FUNCTION")
            extra = body.find(":", start, colon)
            if extra != -1:
                raise body.error(colon, colon + 1, "too many ':' parts",
                                 f"expected {cls.kind}:[module:]function")
            module = t.name(start, colon, check_module)
            start = colon + 1
            if start >= end:
                raise body.error(start, start + 1, "missing function name after the module")
        name_end, offset, off_at = t.split_offset(start, end)
        name = t.name(start, name_end, check_kernel_symbol)
        if body.pattern:
            return Pattern(cls, module=module, function=name)
        if cls.is_return and off_at != end:
            raise body.error(off_at, end, "offset not allowed on a kretprobe",
                             "a return probe fires when the function returns; "
                             f"use kprobe:{name}{t.text[off_at:end]} for an offset")
        return cls._from_target(name, offset, module, body.options)

    @classmethod
    def _from_target(cls, name: str, offset: int, module: str | None,
                     options: dict[str, int]) -> Self:
        raise NotImplementedError

    @classmethod
    def bare_pattern(cls, t: SpecText) -> Pattern:
        """A bare word is a kernel function name pattern."""
        return Pattern(cls, module=None, function=t.name(0, len(t.text), check_kernel_symbol))

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """Kernel functions: ``available_filter_functions`` minus the kprobe blacklist
        where kprobes work and that file is readable, else /proc/kallsyms text symbols; on
        a kernel without kprobes, nothing unless ``include_unsupported`` (a note says so)."""
        from ebpfhooks.spec import matcher

        names, source = _kernel_functions(found)
        found.sources[cls.kind] = source
        mod_ok, ok = matcher(pattern["module"]), matcher(pattern["function"])
        assert ok is not None
        for mod, name in names:
            if ok(name) and (mod_ok is None or (mod is not None and mod_ok(mod))):
                found.add(f"{cls.kind}:{mod}:{name}" if mod else f"{cls.kind}:{name}",
                          cls, name, module=mod)

    def _target_names(self) -> tuple[str, str]:
        return self.symbol, self.symbol

    def _prefix(self) -> str:
        mod = f"{self.module}:" if self.module else ""
        return f"{self.kind}:{mod}{self.symbol}"

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel has no kprobes.

        The error names the missing feature and, where one exists, the stable
        tracepoint to use instead (the syscall's exit for a return probe).
        """
        self._require("kprobe support", "CONFIG_KPROBES",
                      lambda: stable_alternative(self.symbol, ret=self.is_return))

    def resolve(self) -> KprobeResolution:
        """Find the function in /proc/kallsyms, or the syscall wrapper or clone it means.

        >>> Kprobe("sys_openat").resolve()           # doctest: +SKIP
        KprobeResolution(... symbol='__x64_sys_openat' ...)

        Raises :class:`SymbolNotFoundError` with the closest names,
        :class:`AmbiguousSymbolError` when several clones match, and
        :class:`NotSupportedError` for a blacklisted function.
        """
        from ebpfhooks.kernel.kallsyms import index
        from ebpfhooks.kernel.tracefs import kprobe_blacklist

        ks = index()
        name = self.symbol
        note = None
        entries = [e for e in ks.lookup(name) if e.is_function]
        if self.module is not None:
            entries = [e for e in entries if e.module == self.module]
        if not entries:
            found = self._alternate_name(ks)
            if found is None:
                raise self._not_found(ks)
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

    def _not_found(self, ks: Kallsyms) -> SymbolNotFoundError:
        name = self.symbol
        data = ks.lookup(name)
        hint = None
        if data and self.module is None:
            hint = (f"{name} is a {data[0].type_description} symbol (type "
                    f"{data[0].type}), not a function: kprobes need type T or t")
        elif self.module is not None and data:
            mods = sorted({e.module or "vmlinux" for e in data})
            hint = f"{name} is in {', '.join(mods)}, not in module {self.module}"
        return SymbolNotFoundError(
            name,
            where=KALLSYMS + (f" (module {self.module})" if self.module else ""),
            candidates=[] if hint else ks.close_matches(name),
            hint=hint or "list kernel functions with: ebpfhooks list --all 'kprobe:*PART*'",
        )

    def _alternate_name(self, ks: Kallsyms) -> tuple[str, str] | None:
        """The syscall wrapper or the unique compiler clone this name means, with a note."""
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

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Its /proc/kallsyms record(s), whether ``available_filter_functions`` has it, the
        kprobe blacklist, the stable alternative and its C signature from BTF."""
        from ebpfhooks.kernel.kallsyms import read, select
        from ebpfhooks.kernel.tracefs import available_filter_functions, kprobe_blacklist

        def records(name: str) -> list[KSym]:
            mod = self.module
            return select(read(), name.__eq__, module=None if mod is None else mod.__eq__)

        syms = records(self.symbol)
        if not syms:
            syms = records(self.resolve().symbol)  # SymbolNotFoundError with close names
        facts["kallsyms"] = [ksym_dict(s) for s in syms]
        text.extend(f"    kallsyms: {ksym_line(s)}" for s in syms)
        names = [self.symbol, *(s.name for s in syms)]  # BTF is looked up by these
        try:
            res = self.resolve()
            facts["resolves_to"] = str(res)
            text.append(f"    resolves to: {res}")
            names.insert(0, res.symbol)
        except EbpfHooksError as err:
            facts["resolves_to"] = None
            facts["resolve_error"] = str(err)
            text.append(f"    does not resolve: {str(err).splitlines()[0]}")
        funcs = available_filter_functions()
        traceable = None if funcs is None else self.symbol in funcs
        facts["in_available_filter_functions"] = traceable
        text.append("    in available_filter_functions: "
                    + ("unknown (the file is not readable here)" if traceable is None
                       else "yes" if traceable else "no (inlined, notrace or not a function)"))
        black = self.symbol in kprobe_blacklist()
        facts["blacklisted"] = black
        text.append(f"    on the kprobe blacklist: {'yes' if black else 'no'}")
        alt = stable_alternative(self.symbol, ret=self.is_return)
        facts["stable_alternative"] = alt
        if alt:
            text.append(f"    stable alternative: {alt}")
        sig = btf_signature(names)
        facts["btf_signature"] = sig
        text.append(f"    signature: {sig}" if sig else
                    "    signature: unknown (no BTF for it in /sys/kernel/btf/vmlinux)")

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        assert isinstance(resolution, KprobeResolution)
        return _bcc.attach_kprobe(
            program.bpf,
            program.fn_name,
            resolution.symbol,
            getattr(self, "offset", 0),
            ret=self.is_return,
            maxactive=getattr(self, "maxactive", 0),
            what=str(self),
        )


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

    __slots__ = ("offset",)
    _fields = ("symbol", "module", "offset")
    offset: int

    kind = "kprobe"
    bcc_prefix = "kprobe"
    aliases = ("k",)
    libbpf = ()
    fires = "at the start of a kernel function call"
    bcc_entry = "attach_kprobe"

    def __init__(self, symbol: str, offset: int = 0, *, module: str | None = None) -> None:
        self._init(**self._init_function(symbol, module),
                   offset=non_negative(offset, "kprobe offset"))

    @classmethod
    def _from_target(cls, name: str, offset: int, module: str | None,
                     options: dict[str, int]) -> Self:
        return cls(name, offset, module=module)

    def spec(self) -> str:
        """``kprobe:[module:]symbol[+0xOFF]``."""
        return self._prefix() + (f"+{self.offset:#x}" if self.offset else "")


class Kretprobe(KernelFunctionHook):
    """Kernel function return: ``kretprobe:[module:]function[maxactive=N]``.

    >>> str(Kretprobe("vfs_read", maxactive=64))
    'kretprobe:vfs_read[maxactive=64]'

    Fires when the function returns; ``PT_REGS_RC(ctx)`` is its return value.
    ``maxactive`` is how many calls may be in flight at once (0: the kernel's
    default). Minimum kernel 4.1, CONFIG_KPROBES.
    """

    __slots__ = ("maxactive",)
    _fields = ("symbol", "module", "maxactive")
    maxactive: int

    kind = "kretprobe"
    bcc_prefix = "kretprobe"
    aliases = ("kr",)
    libbpf = ()
    options = ("maxactive",)
    fires = "when a kernel function returns"
    bcc_entry = "attach_kretprobe"
    attach_via = "bcc attach_kretprobe (the kprobe PMU, else tracefs kprobe_events)"
    bare = False  # a bare word lists a function once, as its entry (bpftrace -l does too)
    is_return = True

    def __init__(self, symbol: str, *, module: str | None = None, maxactive: int = 0) -> None:
        maxactive = non_negative(maxactive, "kretprobe maxactive")
        if maxactive > 4096:  # KRETPROBE_MAXACTIVE_MAX
            raise SpecError(f"kretprobe maxactive {maxactive} is above the kernel's limit 4096")
        self._init(**self._init_function(symbol, module), maxactive=maxactive)

    @classmethod
    def _from_target(cls, name: str, offset: int, module: str | None,
                     options: dict[str, int]) -> Self:
        return cls(name, module=module, maxactive=options.get("maxactive", 0))

    def spec(self) -> str:
        """``kretprobe:[module:]symbol[[maxactive=N]]``."""
        return self._prefix() + (f"[maxactive={self.maxactive}]" if self.maxactive else "")


# --------------------------------------------------------------------------- listing source


def kprobes_supported() -> bool:
    """Cheap form of ``features.kprobes()`` (which may decompress /proc/config.gz)."""
    import os

    from ebpfhooks.kernel.mounts import tracefs_dir

    # features.PMU_DIR: not imported from there, whose attrs costs `ebpfhooks list` ~30 ms
    if os.path.exists("/sys/bus/event_source/devices/kprobe"):
        return True
    try:
        return os.path.exists(os.path.join(tracefs_dir(), "kprobe_events"))
    except EbpfHooksError:
        from ebpfhooks.kernel import features
        from ebpfhooks.kernel.features import FeatureStatus

        return features.kprobes().status is not FeatureStatus.NO


def _kernel_functions(found: Found) -> tuple[list[tuple[str | None, str]], str]:
    """(module, name) of every kernel function a kprobe could name, and where from.

    Read once per listing (``found.cache``): kprobe and kretprobe patterns share it.
    """
    cached = found.cache.get("kernel_functions")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    supported = kprobes_supported()
    names: list[tuple[str | None, str]] | None = None
    source = ""
    if not supported and not found.include_unsupported:
        found.note("kprobe/kretprobe hooks not listed: this kernel has no kprobes "
                   "(CONFIG_KPROBES; see `ebpfhooks doctor`); `ebpfhooks list --all` "
                   "(include_unsupported=True) lists its functions from /proc/kallsyms")
        names, source = [], "none (kprobes not supported)"
    elif supported:
        from ebpfhooks.kernel.tracefs import kprobe_blacklist, tracefs_root

        try:
            path = tracefs_root() / "available_filter_functions"
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            black = kprobe_blacklist()
            names = [(m, n) for m, n in _filter_functions_with_modules(text)
                     if n not in black and check_kernel_symbol(n) is None]
            source = f"{path} minus <debugfs>/kprobes/blacklist"
        except (OSError, EbpfHooksError):
            names = None
    if names is None:
        from ebpfhooks.kernel.kallsyms import functions, read

        names = functions(read())
        source = f"{KALLSYMS} (function symbols T/t/W/w)"
        if not supported:
            source += ", listed although this kernel cannot attach kprobes"
    found.cache["kernel_functions"] = (names, source)
    return names, source


def _filter_functions_with_modules(text: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        mod = parts[1][1:-1] if len(parts) > 1 and parts[1].startswith("[") else None
        out.append((mod, parts[0]))
    return out


# --------------------------------------------------------------------------- info helpers


def ksym_dict(s: KSym) -> dict[str, Any]:
    """A kallsyms record as JSON-ready data."""
    return {"name": s.name, "type": s.type, "type_description": s.type_description,
            "address": s.real_address, "module": s.module}


def ksym_line(s: KSym) -> str:
    """A kallsyms record in one line."""
    addr = "(address hidden)" if s.address_hidden else f"{s.address:#018x}"
    mod = f" [{s.module}]" if s.module else ""
    return f"{addr} {s.type} {s.name}{mod}  ({s.type_description})"


def btf_signature(symbols: list[str]) -> str | None:
    """The BTF prototype of the first of ``symbols`` (or its name before a ``.isra``-style
    suffix) that /sys/kernel/btf/vmlinux has; ``None`` without BTF or a match."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import vmlinux_btf

    try:
        btf = vmlinux_btf()
        if btf is None:
            return None
        for sym in symbols:
            for name in (sym, sym.split(".")[0]):
                if name and (sig := btf.function_signature(name)) is not None:
                    return sig
    except BtfFormatError:
        return None
    return None


# --------------------------------------------------------------------------- stable alternatives

#: Compiled on first use (re caches it): `ebpfhooks list` never needs it.
_CLONE_SUFFIX = r"\.(isra|constprop|part|cold|llvm|lto_priv)(\.\d+)*$"


def _core_word(symbol: str) -> str:
    name = re.sub(_CLONE_SUFFIX, "", symbol)
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
