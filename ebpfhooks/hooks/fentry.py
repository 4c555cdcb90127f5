"""Kernel functions through BPF trampolines: :class:`Fentry` (entry) and :class:`Fexit`
(return).

Entry and return share one class family (:class:`TracingFunctionHook`): one grammar
(``fentry:[module:]function``, bpftrace's ``kfunc:``/``kretfunc:``, libbpf's
``fentry/function``), one listing source (the kernel's BTF functions), one resolution
(a BTF FUNC type id) and one attach path (the instructions bcc compiled, loaded as a
``BPF_PROG_TYPE_TRACING`` program with ``attach_btf_id`` and attached with
``BPF_RAW_TRACEPOINT_OPEN``).

What the program receives: ``u64 *ctx``, one 64-bit slot per argument of the function
(``ctx[0]`` the first), and in a fexit program the return value after them
(``ctx[N]`` for a function of N arguments). bcc's ``BPF_PROG(name, args...)`` macro
names and types them, for a function of any name::

    BPF_PROG(on_open, int dfd, const char *filename, struct open_how *how, long ret)
    { ... ret ... }          /* fexit:do_sys_openat2: ret is ctx[3] */
"""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, NotSupportedError, SymbolNotFoundError
from ebpfhooks.hooks._btfprog import BTF_WHERE, BtfResolution
from ebpfhooks.hooks.base import Found, Hook, Pattern, optional_text, text_field
from ebpfhooks.names import check_kernel_symbol, check_module

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.base import Resolution
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["DENIED", "NORETURN", "Fentry", "Fexit", "TracingFunctionHook", "fentry_arguments",
           "max_trampoline_args"]

#: Functions the kernel's verifier refuses every tracing program on (``btf_id_deny`` in
#: kernel/bpf/verifier.c: the trampoline itself calls them).
DENIED = frozenset({"migrate_disable", "migrate_enable", "rcu_read_unlock_strict",
                    "preempt_count_add", "preempt_count_sub", "__rcu_read_lock",
                    "__rcu_read_unlock"})
#: Functions that never return: a fexit program would never run (kernels since 6.4
#: refuse it, ``noreturn_deny``).
NORETURN = frozenset({"do_exit", "do_group_exit", "make_task_dead", "kthread_exit",
                      "kthread_complete_and_exit", "__x64_sys_exit", "__x64_sys_exit_group",
                      "__ia32_sys_exit", "__ia32_sys_exit_group", "__arm64_sys_exit",
                      "__arm64_sys_exit_group"})


class TracingFunctionHook(Hook):
    """A BPF trampoline on a kernel function: the shared half of fentry and fexit.

    Minimum kernel: 5.5 (x86-64; arm64 6.0), with BTF (CONFIG_DEBUG_INFO_BTF), a BPF JIT
    and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS; functions of modules 5.11.
    """

    __slots__ = ("module", "symbol")
    _fields = ("symbol", "module")
    symbol: str
    module: str | None

    example = "do_sys_openat2"
    target_noun = "kernel function"
    target_shape = "FUNCTION"
    hooks = "kernel function (BTF)"
    stable = False
    overhead = "very low"
    min_kernel = (5, 5)
    program_type = "TRACING"
    program_ctx = "u64 *ctx"
    feature = "trampolines"
    capabilities = caps.TRACING
    is_return: ClassVar[bool] = False
    #: bcc's table of the functions it attached itself at compile time.
    bcc_table: ClassVar[str] = ""

    def __init__(self, symbol: str, *, module: str | None = None) -> None:
        module = optional_text(module, check_module, "kernel module")
        self._init(symbol=text_field(symbol, check_kernel_symbol, "kernel symbol"),
                   module=None if module == "vmlinux" else module)

    def spec(self) -> str:
        """``KIND:[module:]function``."""
        mod = f"{self.module}:" if self.module else ""
        return f"{self.kind}:{mod}{self.symbol}"

    def _target_names(self) -> tuple[str, str]:
        return self.symbol, self.symbol

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``[module ":"] function`` (libbpf's ``fentry/[module:]function`` too; the
        module ``vmlinux`` is the kernel itself). No offset: a trampoline runs at the
        function's entry (or return)."""
        t = body.t
        start, end = body.start, body.end
        module = None
        colon = body.rfind(":")
        if colon != -1:
            if body.find(":", start, colon) != -1:
                raise body.error(colon, colon + 1, "too many ':' parts",
                                 f"expected {cls.kind}:[module:]function")
            module = t.name(start, colon, check_module)
            start = colon + 1
            if start >= end:
                raise body.error(start, start + 1, "missing function name after the module")
        plus = body.find("+", start, end)
        if plus != -1:
            raise body.error(plus, end, f"offset not allowed on a {cls.kind} hook",
                             "a trampoline runs at the function's entry or return; "
                             f"use kprobe:{t.text[start:end]} for an offset")
        name = t.name(start, end, check_kernel_symbol)
        if body.pattern:
            return Pattern(cls, module=module, function=name)
        return cls(name, module=module)

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The FUNC types of the kernel's BTF (vmlinux's, then each module's) that a
        trampoline can take: in ``available_filter_functions`` (where ftrace can patch
        them; the file's ``[module]`` tells vmlinux's from a module's), not variadic, at
        most :func:`max_trampoline_args` arguments, not on the kernel's deny list. That
        is what ``bpftrace -l 'kfunc:*'`` lists for vmlinux (as ``kfunc:vmlinux:NAME``;
        bpftrace 0.17 lists no module's functions and keeps the deny list). On a kernel
        without BPF trampolines nothing, unless ``include_unsupported`` (a note says
        so): then every BTF function."""
        from ebpfhooks.spec import matcher

        mod_ok, ok = matcher(pattern["module"]), matcher(pattern["function"])
        assert ok is not None
        names, source = _traceable_functions(found, ok, mod_ok)
        found.sources[cls.kind] = source
        for mod, name in names:
            found.add(f"{cls.kind}:{mod}:{name}" if mod else f"{cls.kind}:{name}",
                      cls, name, module=mod)

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel cannot attach BPF trampolines.

        The error names the stable tracepoint that observes the same thing where one
        exists, and the kprobe on the same function where the kernel has kprobes.
        """
        from ebpfhooks.hooks._btfprog import require_trampolines
        from ebpfhooks.hooks.kprobe import kprobes_supported, stable_alternative

        probe = "kretprobe" if self.is_return else "kprobe"
        mod = f"{self.module}:" if self.module else ""
        extra = (f"; {probe}:{mod}{self.symbol} probes the same function (this kernel "
                 "has kprobes)" if kprobes_supported() else "; this kernel has no kprobes "
                 "either")
        require_trampolines(self, "fentry and fexit programs",
                            lambda: stable_alternative(self.symbol, ret=self.is_return), extra)

    def resolve(self) -> BtfResolution:
        """Find the function's FUNC type in the kernel's BTF (vmlinux, else the modules').

        >>> Fentry("do_sys_openat2").resolve()       # doctest: +SKIP
        BtfResolution(... name='do_sys_openat2', kind='FUNC', type_id=76192, btf='vmlinux')

        Raises :class:`SymbolNotFoundError` with the closest BTF function names, and
        :class:`NotSupportedError` for a function the kernel refuses tracing programs on
        (:data:`DENIED`; for fexit also the functions that never return).
        """
        from ebpfhooks.kernel.btf import tracing_function_id
        from ebpfhooks.kernel.tracefs import available_filter_functions

        if self.symbol in DENIED or (self.is_return and self.symbol in NORETURN):
            from ebpfhooks.hooks.kprobe import stable_alternative

            why = ("the kernel's verifier refuses tracing programs on it (btf_id_deny: "
                   "the trampoline itself calls it)" if self.symbol in DENIED else
                   "it never returns, so a fexit program would never run (kernels since "
                   "6.4 refuse it)")
            raise NotSupportedError(f"{self} cannot attach: {why}",
                                    missing=f"a function other than {self.symbol}",
                                    alternative=stable_alternative(self.symbol,
                                                                   ret=self.is_return))
        found = tracing_function_id(self.symbol, self.module)
        if found is None:
            raise self._not_found()
        self._check_arity(found.btf)
        note = None
        traceable = available_filter_functions()
        if traceable is not None and self.symbol not in traceable:
            note = (f"{self.symbol} is not in available_filter_functions (notrace or "
                    "inlined): the kernel may refuse the trampoline")
        return BtfResolution(self, name=self.symbol, kind="FUNC", type_id=found.type_id,
                             btf=found.btf, note=note)

    def _check_arity(self, btf_object: str) -> None:
        """Raise :class:`NotSupportedError` for a function no trampoline here can take."""
        from ebpfhooks.hooks.kprobe import stable_alternative
        from ebpfhooks.kernel.btf import module_btf, vmlinux_btf

        btf = vmlinux_btf() if btf_object == "vmlinux" else module_btf(btf_object)
        arity = None if btf is None else btf.function_arity(self.symbol)
        if arity is None:
            return
        count, variadic = arity
        limit = max_trampoline_args()
        if variadic or count > limit:
            why = ("it is variadic (takes '...'), which BPF trampolines cannot pass" if variadic
                   else f"it takes {count} arguments and a BPF trampoline passes at most "
                        f"{limit} on this machine and kernel")
            raise NotSupportedError(
                f"{self} cannot attach: {why}",
                missing=f"a BPF trampoline for {count} arguments" if not variadic
                else "BPF trampolines for variadic functions",
                alternative=stable_alternative(self.symbol, ret=self.is_return))

    def _not_found(self) -> SymbolNotFoundError:
        from ebpfhooks._util import close_matches
        from ebpfhooks.hooks._btfprog import btf_functions
        from ebpfhooks.kernel.btf import tracing_function_id

        hint = None
        candidates: list[str] = []
        if self.module is not None and (elsewhere := tracing_function_id(self.symbol)):
            hint = f"{self.symbol} is in {elsewhere.btf}, not in module {self.module}"
            candidates = [type(self)(self.symbol, module=elsewhere.btf).spec()]
        else:
            funcs = btf_functions()
            if not funcs:
                hint = ("the kernel publishes no BTF (/sys/kernel/btf/vmlinux: "
                        "CONFIG_DEBUG_INFO_BTF), which fentry and fexit need")
            names = [n for m, n in funcs if self.module is None or m == self.module]
            candidates = close_matches(self.symbol, names)
        return SymbolNotFoundError(
            self.symbol,
            where=(f"the FUNC types of module {self.module}'s BTF (/sys/kernel/btf/"
                   f"{self.module})" if self.module else f"the FUNC types of {BTF_WHERE}"),
            candidates=candidates,
            hint=hint or f"list kernel functions with: ebpfhooks list --all '{self.kind}:*PART*'",
        )

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Its BTF FUNC (type id and object), the C signature, how the program reads each
        argument (``ctx[i]``) and, for fexit, the return value; whether ftrace can patch
        it; the kprobe and stable alternatives."""
        from ebpfhooks.hooks.kprobe import stable_alternative
        from ebpfhooks.kernel.tracefs import available_filter_functions

        res = self.resolve()
        facts["btf"] = {"name": res.name, "type_id": res.type_id, "object": res.btf}
        text.append(f"    BTF: FUNC {res.name}, type id {res.type_id} in {res.btf}")
        args = fentry_arguments(res)
        if args is None:
            facts["btf_signature"] = facts["args"] = None
            text.append("    signature: unknown")
        else:
            sig, params, ret = args
            facts["btf_signature"] = sig
            facts["args"] = [{"index": i, "type": t, "name": n, "read": f"ctx[{i}]"}
                             for i, (t, n) in enumerate(params)]
            text.append(f"    signature: {sig}")
            text.append("    the program: int fn(u64 *ctx), or bcc's BPF_PROG(fn, ...) "
                        "naming the arguments below")
            text.extend(f"        ctx[{i}]: {t} {n}".rstrip() for i, (t, n) in
                        enumerate(params))
            if self.is_return:
                read = None if ret == "void" else f"ctx[{len(params)}]"
                facts["return"] = {"type": ret, "read": read}
                text.append(f"        {read}: {ret} (the return value)" if read else
                            "        it returns void: no return value to read")
            declared = [f"{t} {n}".rstrip() for t, n in params]
            if self.is_return and ret != "void":
                declared.append(f"{ret} ret")
            facts["bpf_prog"] = f"BPF_PROG(on_{self.symbol}, {', '.join(declared)})" \
                if declared else f"BPF_PROG(on_{self.symbol})"
            text.append(f"    e.g.: {facts['bpf_prog']}")
        funcs = available_filter_functions()
        traceable = None if funcs is None else self.symbol in funcs
        facts["in_available_filter_functions"] = traceable
        text.append("    in available_filter_functions: "
                    + ("unknown (the file is not readable here)" if traceable is None
                       else "yes" if traceable else "no (ftrace cannot patch it)"))
        alt = stable_alternative(self.symbol, ret=self.is_return)
        facts["stable_alternative"] = alt
        if alt:
            text.append(f"    stable alternative: {alt}")

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import bpfsys
        from ebpfhooks.hooks import _btfprog

        assert isinstance(resolution, BtfResolution)
        return _btfprog.attach(
            program, resolution, prog_type=bpfsys.BPF_PROG_TYPE_TRACING,
            attach_type=bpfsys.BPF_TRACE_FEXIT if self.is_return else bpfsys.BPF_TRACE_FENTRY,
            autoload=None if self.module else (self.bcc_table,
                                               f"{self.bcc_prefix}__{self.symbol}"))


class Fentry(TracingFunctionHook):
    """Kernel function entry through a BPF trampoline: ``fentry:[module:]function``.

    >>> Fentry("do_sys_openat2")
    Fentry(symbol='do_sys_openat2', module=None)
    >>> str(Fentry.from_spec("kfunc:vfs_read")), str(Fentry.from_spec("fentry/vfs_read"))
    ('fentry:vfs_read', 'fentry:vfs_read')

    The program runs when the kernel calls the function, with its arguments typed by
    BTF: ``int on_open(u64 *ctx)`` (``ctx[0]`` the first argument), or bcc's
    ``BPF_PROG(on_open, int dfd, const char *filename)``. Cheaper than a kprobe (a
    direct call from the function's entry, no breakpoint). Unstable interface, like a
    kprobe. Minimum kernel 5.5 with BPF trampolines (x86-64; arm64 6.0).
    """

    __slots__ = ()
    kind = "fentry"
    bcc_prefix = "kfunc"
    bcc_table = "kfunc"
    aliases = ("kfunc", "f")
    fires = "at the start of a kernel function call"
    attach_via = ("BPF_PROG_LOAD of bcc's compiled function (TRACING, BPF_TRACE_FENTRY, "
                  "attach_btf_id) + BPF_RAW_TRACEPOINT_OPEN (a BPF trampoline)")
    bcc_entry = "attach_kfunc"


class Fexit(TracingFunctionHook):
    """Kernel function return through a BPF trampoline: ``fexit:[module:]function``.

    >>> str(Fexit.from_spec("kretfunc:vfs_read")), str(Fexit.from_spec("fr:vfs_read"))
    ('fexit:vfs_read', 'fexit:vfs_read')

    The program runs when the function returns and sees its arguments and its return
    value: ``ctx[N]`` for a function of N arguments (``BPF_PROG(on_read, struct file
    *file, char *buf, size_t count, loff_t *pos, ssize_t ret)``). Unlike a kretprobe
    it needs no ``maxactive``. Minimum kernel 5.5 with BPF trampolines.
    """

    __slots__ = ()
    kind = "fexit"
    bcc_prefix = "kretfunc"
    bcc_table = "kretfunc"
    aliases = ("kretfunc", "fr")
    fires = "when a kernel function returns (arguments and return value)"
    attach_via = ("BPF_PROG_LOAD of bcc's compiled function (TRACING, BPF_TRACE_FEXIT, "
                  "attach_btf_id) + BPF_RAW_TRACEPOINT_OPEN (a BPF trampoline)")
    bcc_entry = "attach_kretfunc"
    is_return = True


# --------------------------------------------------------------------------- helpers


def fentry_arguments(res: BtfResolution
                     ) -> tuple[str, list[tuple[str, str]], str] | None:
    """(C signature, [(type, name)] of the parameters, return type) of a resolved
    function, from the BTF it was found in; ``None`` when BTF cannot render it."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import module_btf, vmlinux_btf

    try:
        btf = vmlinux_btf() if res.btf == "vmlinux" else module_btf(res.btf)
        if btf is None:
            return None
        sig = btf.function_signature(res.name)
        params = btf.function_params(res.name)
        ret = btf.function_return_type(res.name)
    except BtfFormatError:
        return None
    if sig is None or params is None or ret is None:
        return None
    return sig, params, ret


def _traceable_functions(found: Found, ok: Callable[[str], bool],
                         mod_ok: Callable[[str], bool] | None
                         ) -> tuple[list[tuple[str | None, str]], str]:
    """(module, name) of the functions matching ``ok``/``mod_ok`` that a fentry or fexit
    program could name, and where they came from.

    A module's BTF is parsed only when ``available_filter_functions`` lists a matching
    function of that module (or when that file cannot be read).
    """
    from ebpfhooks.kernel.btf import module_btf, module_names, vmlinux_btf

    where = "/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE (FUNC types)"
    if not _trampolines_not_refused() and not found.include_unsupported:
        found.note("fentry/fexit hooks not listed: this kernel cannot attach BPF "
                   "trampolines (see `ebpfhooks doctor`); `ebpfhooks list --all` "
                   "(include_unsupported=True) lists the functions of its BTF")
        return [], "none (BPF trampolines not supported)"
    traceable = _filter_functions_by_module(found)
    limit = max_trampoline_args()
    out: list[tuple[str | None, str]] = []
    vmlinux = vmlinux_btf()
    objects: list[tuple[str | None, Any]] = []
    if vmlinux is not None and (mod_ok is None or mod_ok("vmlinux")):
        objects.append((None, vmlinux))  # kfunc:vmlinux:F is bpftrace 0.17's spelling
    if vmlinux is not None:
        for module in module_names():
            if mod_ok is not None and not mod_ok(module):
                continue
            if traceable is not None and not any(ok(n) for n in traceable.get(module, ())):
                continue  # nothing of this module can match: its BTF is not read
            btf = module_btf(module)
            if btf is not None:
                objects.append((module, btf))
    for mod, btf in objects:
        allowed = None if traceable is None else traceable.get(mod, frozenset())
        for name in btf.function_names():
            if not ok(name) or name in DENIED or (allowed is not None and name not in allowed):
                continue
            arity = btf.function_arity(name)
            if arity is not None and not arity[1] and arity[0] <= limit:
                out.append((mod, name))
    source = f"{where}, at most {limit} arguments, not variadic"
    if traceable is not None:
        source += ", in available_filter_functions"
    else:
        source += " (available_filter_functions is not readable: not filtered by it)"
    if not _trampolines_not_refused():
        source += "; listed although this kernel cannot attach BPF trampolines"
    return out, source


def _filter_functions_by_module(found: Found) -> dict[str | None, frozenset[str]] | None:
    """``available_filter_functions`` by module (``None``: vmlinux), or ``None`` when it
    cannot be read. Read once per listing."""
    from ebpfhooks.kernel.tracefs import tracefs_root

    if "filter_functions_by_module" in found.cache:
        cached: dict[str | None, frozenset[str]] | None = found.cache[
            "filter_functions_by_module"]
        return cached
    by_mod: dict[str | None, set[str]] = {}
    try:
        path = tracefs_root() / "available_filter_functions"
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (OSError, EbpfHooksError):
        result = None
    else:
        lines = text.split("\n")
        by_mod[None] = {line for line in lines if line and "[" not in line}  # vmlinux's
        for line in lines:
            if "[" in line:  # "name [module]"
                name, _, mod = line.partition(" [")
                by_mod.setdefault(mod.rstrip("]").strip() or None, set()).add(name.strip())
        result = {mod: frozenset(names) for mod, names in by_mod.items()}
    found.cache["filter_functions_by_module"] = result
    return result


def max_trampoline_args() -> int:
    """How many arguments a BPF trampoline passes on this machine and kernel.

    x86-64: 6 before Linux 6.6, 12 since (arguments on the stack); arm64: 8; others 6.
    A function with more (or variadic) cannot be traced by fentry/fexit.

    >>> max_trampoline_args() in (6, 8, 12)
    True
    """
    import platform

    from ebpfhooks.kernel.features import kernel_version

    machine = platform.machine()
    if machine == "x86_64":
        return 12 if kernel_version() >= (6, 6, 0) else 6
    return 8 if machine == "aarch64" else 6


def _trampolines_not_refused() -> bool:
    """Whether ``features.trampolines()`` does not say no (cached once conclusive)."""
    try:
        from ebpfhooks.kernel import features
        from ebpfhooks.kernel.features import FeatureStatus

        return features.trampolines().status is not FeatureStatus.NO
    except EbpfHooksError:
        return True
