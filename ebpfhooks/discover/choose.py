"""Choosing a hook: every way to observe a word on this kernel, and the one to use.

The rule: a stable tracepoint before a kernel function when both exist (tracepoints are
a stable kernel ABI; kernel functions are renamed, inlined and removed between
versions); then the same events as a raw tracepoint, typed by BTF (``tp_btf``) where
the kernel has BTF, else untyped (``rawtracepoint``); then a kernel function that can
attach here, through a BPF trampoline (``fentry``/``fexit``: lower overhead than a
kprobe, arguments typed by BTF) where the kernel has them, else a kprobe. Asked for
typed arguments (``typed=True``: the program follows the kernel objects a tracepoint
passes), the tracepoint chosen is taken as ``tp_btf`` when the kernel's BTF has it.
"""

from __future__ import annotations

from ebpfhooks.errors import EbpfHooksError, SpecError

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Candidate", "Suggestion", "suggest"]


class Candidate:
    """One way to observe WORD: ``spec``, ``kind``, ``stable``, ``attachable`` and ``why``.

    >>> Candidate("tracepoint:a:b", "tracepoint", True, True, "").stable
    True
    """

    __slots__ = ("attachable", "kind", "spec", "stable", "why")

    def __init__(self, spec: str, kind: str, stable: bool, attachable: bool | None,
                 why: str) -> None:
        self.spec = spec
        self.kind = kind
        self.stable = stable
        self.attachable = attachable
        self.why = why

    def __repr__(self) -> str:
        return (f"Candidate(spec={self.spec!r}, kind={self.kind!r}, stable={self.stable}, "
                f"attachable={self.attachable}, why={self.why!r})")

    def to_dict(self) -> dict[str, Any]:
        """The candidate as JSON-ready data."""
        return {"spec": self.spec, "kind": self.kind, "stable": self.stable,
                "attachable": self.attachable, "why": self.why}


class Suggestion:
    """Every candidate for a word, and the one to use (``recommended``) with the reason."""

    __slots__ = ("candidates", "more", "notes", "reason", "recommended", "ret", "typed",
                 "word")

    def __init__(self, word: str, candidates: list[Candidate], recommended: str | None,
                 reason: str, more: dict[str, int], notes: list[str] | None = None,
                 ret: bool = False, typed: bool = False) -> None:
        self.word = word
        self.ret = ret
        self.typed = typed
        self.notes = list(notes or [])
        self.candidates = candidates
        self.recommended = recommended
        self.reason = reason
        self.more = more

    def __repr__(self) -> str:
        return (f"<Suggestion {self.word!r}{' (return)' if self.ret else ''}: "
                f"recommended {self.recommended}, {len(self.candidates)} candidates>")

    def to_dict(self) -> dict[str, Any]:
        """The suggestion as JSON-ready data."""
        return {"word": self.word, "return": self.ret, "typed": self.typed,
                "recommended": self.recommended,
                "reason": self.reason, "chain": self.chain(),
                "candidates": [c.to_dict() for c in self.candidates], "more": self.more,
                "notes": self.notes}

    def chain(self) -> str | None:
        """A fallback chain to paste into ``first_of``/``trace``, stable hooks first.

        >>> suggest("execve").chain()  # doctest: +SKIP
        'tracepoint:syscalls:sys_enter_execve | kprobe:__x64_sys_execve | ...'

        The recommended stable tracepoint (or its ``tp_btf``) first, then the kernel
        function itself, its syscall wrapper and ``do_``/``__`` variants and its compiler
        clones (``.isra.N``...), each as fentry where BTF has it and then as kprobe
        (fexit and kretprobe for a suggestion about the return, ``suggest(word,
        ret=True)``): on a kernel where one is missing, renamed or cannot attach (no
        BPF trampolines, no kprobes), the chain falls through to the next. ``None``
        when nothing observes the word.
        """
        parts: list[str] = []
        if self.recommended and self.recommended.startswith(("tracepoint:", "tp_btf:")):
            parts.append(self.recommended)
        probe = "kretprobe" if self.ret else "kprobe"
        tramp = "fexit" if self.ret else "fentry"
        have = {c.spec for c in self.candidates}
        for c in self.candidates:
            if c.kind != probe:
                continue
            name = c.spec.split(":", 1)[1]
            if (_func_rank(self.word, name)[0] <= 2 or name == f"__{self.word}"
                    or name.startswith(f"{self.word}.")):
                if f"{tramp}:{name}" in have:
                    parts.append(f"{tramp}:{name}")
                parts.append(c.spec)
        if self.recommended and self.recommended not in parts:
            parts.append(self.recommended)
        return " | ".join(dict.fromkeys(parts)) or None



_MAX_KERNEL_FUNCS = 8


def _tp_rank(word: str, cat: str, ev: str, ret: bool = False) -> tuple[int, str, int, str]:
    first, second = ("sys_exit_", "sys_enter_") if ret else ("sys_enter_", "sys_exit_")
    if cat == "syscalls" and ev == f"{first}{word}":
        r = 0
    elif ev == word:
        r = 1
    elif cat == "syscalls" and ev == f"{second}{word}":
        r = 2
    elif cat == "syscalls" and ev.rstrip("0123456789") in (f"sys_enter_{word}",
                                                        f"sys_exit_{word}"):
        r = 3
    else:
        r = 4
    core = ev.replace("sys_enter_", "").replace("sys_exit_", "")
    return r, core, second in ev, f"{cat}:{ev}"


def suggest(word: str, *, ret: bool = False, typed: bool = False) -> Suggestion:
    """Every way to observe ``word`` on this kernel, and the one to use.

    >>> suggest("execve").recommended  # doctest: +SKIP
    'tracepoint:syscalls:sys_enter_execve'
    >>> suggest("openat", ret=True).recommended  # doctest: +SKIP
    'tracepoint:syscalls:sys_exit_openat'
    >>> suggest("sched_process_exec", typed=True).recommended  # doctest: +SKIP
    'tp_btf:sched_process_exec'

    ``ret=True`` asks about the return (what a kretprobe would see): the syscall's
    ``sys_exit_*`` tracepoint (``args->ret`` is the return value) comes first, and
    the chain uses fexit and kretprobes. ``typed=True`` says typed arguments matter
    (the program follows the kernel objects the tracepoint passes, e.g. the
    ``struct task_struct *`` of ``sched_process_exec``): the tracepoint chosen is
    recommended as ``tp_btf`` where the kernel's BTF has it.

    Candidates across kinds: tracepoints whose event contains ``word``, raw tracepoints
    and their ``tp_btf`` twins, kernel functions (kprobe/kretprobe, and fentry/fexit
    where BTF has the function; the syscall wrapper among them), each marked stable or
    not and attachable here or not, with why. The recommendation follows the module's
    rule: a stable tracepoint first (the syscall entry ``sys_enter_WORD``, an event
    named ``WORD``, the tracepoint :func:`ebpfhooks.hooks.kprobe.stable_alternative`
    finds, or a known stable replacement such as ``sock:inet_sock_set_state`` for
    ``tcp_connect``; as ``tp_btf`` with ``typed``), then a raw tracepoint as ``tp_btf``
    (typed, same cost) where the kernel has BTF, else as ``rawtracepoint``, then the
    kernel function as fentry/fexit where BPF trampolines work (lower overhead than a
    kprobe), else as a kprobe that can attach here.

    Raises :class:`SpecError` when ``word`` is not a plain name (letters, digits, ``_``).
    """
    from ebpfhooks.hooks._btfprog import _short
    from ebpfhooks.hooks.kprobe import KNOWN_STABLE, stable_alternative
    from ebpfhooks.hooks.rawtracepoint import raw_tracepoint_names
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus
    from ebpfhooks.kernel.kallsyms import functions, read
    from ebpfhooks.kernel.tracefs import list_tracepoints
    from ebpfhooks.names import WILDCARDS, check_kernel_symbol
    from ebpfhooks.spec import SpecText, has_wildcard

    if not isinstance(word, str):
        raise SpecError(f"suggest() takes a word (str), got {type(word).__name__}")
    SpecText(word, pattern=True).name(0, len(word), check_kernel_symbol)
    if has_wildcard(word):
        raise SpecError("suggest takes a word, not a pattern", spec=word,
                        column=min(i for i, ch in enumerate(word) if ch in WILDCARDS),
                        hint=f"list a pattern with: ebpfhooks list '{word}'")
    cands: list[Candidate] = []
    more: dict[str, int] = {}
    tps = list_tracepoints()
    have_tp = set(f"tracepoint:{c}:{e}" for c, e in tps)
    matching = sorted(((c, e) for c, e in tps if word in e),
                      key=lambda p: _tp_rank(word, p[0], p[1], ret))
    entry, leave = "the syscall's entry (stable ABI)", "the syscall's return (stable ABI)"
    for cat, ev in matching:
        rank = _tp_rank(word, cat, ev, ret)[0]
        why = {0: leave if ret else entry, 1: "an event named after it",
               2: entry if ret else leave, 3: "a variant of the syscall"}.get(rank,
                                                                              "contains it")
        cands.append(Candidate(f"tracepoint:{cat}:{ev}", "tracepoint", True, True, why))
    known = KNOWN_STABLE.get(word)
    if known and known[0] in have_tp and all(c.spec != known[0] for c in cands):
        cands.append(Candidate(known[0], "tracepoint", True, True, known[1]))
    alt = stable_alternative(word, ret=ret)
    if alt and all(c.spec != alt for c in cands):
        cands.append(Candidate(alt, "tracepoint", True, True,
                               "stable alternative of the kernel function"))
    raw_ok = features.raw_tracepoints().status is not FeatureStatus.NO
    try:
        data = read()
    except EbpfHooksError:
        data = b""
    try:
        all_raws = raw_tracepoint_names()[0]
    except EbpfHooksError:
        all_raws = []
    raws = sorted({n for m, n in all_raws if word in n}, key=lambda n: (n != word, len(n), n))
    btf_ok = features.btf().status is not FeatureStatus.NO
    for name in raws:
        cands.append(Candidate(f"rawtracepoint:{name}", "rawtracepoint", True, raw_ok,
                               "raw arguments, cheaper than the tracepoint"))
        cands.append(Candidate(
            f"tp_btf:{name}", "tp_btf", True, btf_ok,
            "the same events with arguments typed by BTF: read directly, kernel objects "
            "followed without bpf_probe_read" + ("" if btf_ok else
                                                 "; not attachable here: no kernel BTF")))
    kp = features.kprobes()
    kp_ok = kp.status is not FeatureStatus.NO
    kp_why = "" if kp_ok else "not attachable here: this kernel has no kprobes"
    notes = [] if kp_ok else [f"kprobes: {kp.reason}"]
    funcs = sorted({n for m, n in functions(data) if word in n},
                   key=lambda n: _func_rank(word, n))
    probe, other = ("kretprobe", "kprobe") if ret else ("kprobe", "kretprobe")
    in_btf = _btf_function_test()
    tramp = "fexit" if ret else "fentry"
    tramp_ok, tramp_why = True, ""
    if any(in_btf(n) for n in funcs[:_MAX_KERNEL_FUNCS]):
        tr = features.trampolines()
        tramp_ok = tr.status is not FeatureStatus.NO
        if not tramp_ok:
            tramp_why = "not attachable here: this kernel has no BPF trampolines"
            notes.append(f"trampolines: {_short(tr.reason)}")
    for i, name in enumerate(funcs[:_MAX_KERNEL_FUNCS]):
        role = _func_role(word, name) + (" (its return value)" if ret else "")
        if in_btf(name):
            cands.append(Candidate(
                f"{tramp}:{name}", tramp, False, tramp_ok,
                role + "; through a BPF trampoline: lower overhead than a kprobe, arguments "
                "typed by BTF" + ("; " + tramp_why if tramp_why else "")))
        why = role + ("; " + kp_why if kp_why else "")
        cands.append(Candidate(f"{probe}:{name}", probe, False, kp_ok, why))
        if i == 0:
            cands.append(Candidate(f"{other}:{name}", other, False, kp_ok,
                                   ("its entry" if ret else "its return value")
                                   + ("; " + kp_why if kp_why else "")))
    if len(funcs) > _MAX_KERNEL_FUNCS:
        more[probe] = len(funcs) - _MAX_KERNEL_FUNCS
    recommended, reason = _recommend(word, cands, known, alt, ret, typed)
    return Suggestion(word, cands, recommended, reason, more, notes, ret, typed)


def _btf_function_test() -> Callable[[str], bool]:
    """Whether vmlinux's BTF has a FUNC of a name (always False without BTF)."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import vmlinux_btf

    try:
        btf = vmlinux_btf()
    except BtfFormatError:
        btf = None
    if btf is None:
        return lambda _name: False
    return lambda name: btf.function_id(name) is not None


def _func_rank(word: str, name: str) -> tuple[int, int, str]:
    from ebpfhooks.hooks.kprobe import SYSCALL_PREFIXES

    if name == word:
        r = 0
    elif any(name == p + word for p in SYSCALL_PREFIXES):
        r = 1 if name.startswith(("__x64_", "__arm64_", "__s390x_", "__riscv_")) else 3
    elif name in (f"do_{word}", f"__do_{word}", f"do_sys_{word}", f"ksys_{word}"):
        r = 2
    else:
        r = 4
    return r, len(name), name


def _func_role(word: str, name: str) -> str:
    from ebpfhooks.hooks.kprobe import SYSCALL_PREFIXES

    if name == word:
        return "the kernel function itself (unstable: renamed or inlined between kernels)"
    if any(name == p + word for p in SYSCALL_PREFIXES):
        return "syscall wrapper (unstable across architectures and versions)"
    return "kernel function containing the word (unstable)"


def _recommend(word: str, cands: list[Candidate], known: tuple[str, str] | None,
               alt: str | None, ret: bool = False, typed: bool = False
               ) -> tuple[str | None, str]:
    spec, reason = _recommend_untyped(word, cands, known, alt, ret)
    if typed and spec is not None and spec.startswith("tracepoint:"):
        twin = f"tp_btf:{spec.rsplit(':', 1)[1]}"
        if any(c.spec == twin and c.attachable for c in cands):
            return twin, (f"typed arguments asked for: {spec}'s events as tp_btf, "
                          "arguments typed by BTF (" + reason + ")")
    return spec, reason


def _recommend_untyped(word: str, cands: list[Candidate], known: tuple[str, str] | None,
                       alt: str | None, ret: bool = False) -> tuple[str | None, str]:
    tps = [c for c in cands if c.kind == "tracepoint"]
    syscall = f"tracepoint:syscalls:{'sys_exit_' if ret else 'sys_enter_'}{word}"
    for c in tps:
        if c.spec == syscall:
            return c.spec, ("a stable tracepoint: the syscall's return (args->ret)" if ret
                            else "a stable tracepoint: the syscall's entry, with parsed "
                            "arguments")
    named = [c for c in tps if c.spec.endswith(f":{word}")]
    if named:
        return named[0].spec, "a stable tracepoint named after it"
    if known and any(c.spec == known[0] for c in tps):
        return known[0], f"a stable tracepoint: {known[1]}"
    if alt and any(c.spec == alt for c in tps):
        return alt, "a stable tracepoint that observes the same thing"
    ranked = [c for c in tps if c.why != "contains it"]
    if ranked:
        return ranked[0].spec, "a stable tracepoint"
    typed_raws = [c for c in cands if c.kind == "tp_btf" and c.attachable]
    if typed_raws:
        return typed_raws[0].spec, ("a tracepoint's events with arguments typed by BTF "
                                    "(tp_btf: stable name, the raw tracepoint's cost)")
    raws = [c for c in cands if c.kind == "rawtracepoint" and c.attachable]
    if raws:
        return raws[0].spec, "a raw tracepoint (stable name, raw arguments)"
    probe = "kretprobe" if ret else "kprobe"
    tramp = "fexit" if ret else "fentry"
    funcs = [c for c in cands if c.kind in (probe, tramp) and c.attachable]
    if funcs:
        best = funcs[0]
        name = best.spec.split(":", 1)[1]
        faster = next((c for c in funcs if c.spec == f"{tramp}:{name}"), best)
        if faster.kind == tramp:
            return faster.spec, (f"no tracepoint covers it: {tramp} on the kernel function "
                                 f"(a BPF trampoline: lower overhead than a {probe}; "
                                 "unstable across kernels)")
        return best.spec, f"no tracepoint covers it: a {probe} (unstable across kernels)"
    if tps:
        return tps[0].spec, "a stable tracepoint whose name contains the word"
    if any(c.kind == probe for c in cands):
        return None, (f"nothing on this kernel observes {word!r}: no tracepoint covers it, "
                      "and this kernel has no kprobes"
                      + (" and no BPF trampolines" if any(c.kind == tramp for c in cands)
                         else ""))
    return None, f"nothing on this kernel observes {word!r}: no tracepoint, raw tracepoint " \
                 "or kernel function has it in its name"
