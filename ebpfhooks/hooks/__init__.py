"""The registry of hook kinds: one module per kind family, listed here once.

Adding a kind is a module in this package (its class declares its spellings, parses its
target, names its listing source and its ``info`` facts, and attaches; see
docs/architecture.md) plus its line in :data:`KINDS`. Everything that names kinds (the
spec parser, listings, ``info``, ``doctor``, ``bench``, docs) reads this table.

>>> from ebpfhooks.hooks import REGISTRY
>>> REGISTRY.get("rt").kind, REGISTRY.get("TP").kind
('rawtracepoint', 'tracepoint')

Importing this package is cheap (no attrs, no bcc, nothing read from the system): the
kind modules are light, so ``ebpfhooks list`` can parse patterns with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ebpfhooks.hooks._btfprog import BtfResolution
from ebpfhooks.hooks.base import Hook, Pattern, Resolution
from ebpfhooks.hooks.fentry import Fentry, Fexit
from ebpfhooks.hooks.kprobe import Kprobe, KprobeResolution, Kretprobe
from ebpfhooks.hooks.lsm import Lsm
from ebpfhooks.hooks.perf import Hardware, Interval, PerfEventResolution, Profile, Software
from ebpfhooks.hooks.rawsocket import RawSocket
from ebpfhooks.hooks.rawtracepoint import RawTracepoint, RawTracepointResolution
from ebpfhooks.hooks.tpbtf import TpBtf
from ebpfhooks.hooks.tracepoint import Tracepoint, TracepointResolution
from ebpfhooks.hooks.uprobe import (
    Address,
    FileOffset,
    Symbol,
    Uprobe,
    UprobeResolution,
    Uretprobe,
)
from ebpfhooks.hooks.usdt import Usdt, UsdtResolution
from ebpfhooks.hooks.xdp import InterfaceResolution, Xdp, XdpMode

#: Every kind, in the order docs, ``doctor`` and ``bench`` list them.
KINDS: tuple[type[Hook], ...] = (
    Kprobe, Kretprobe, Tracepoint, RawTracepoint, Xdp, Uprobe, Uretprobe, RawSocket,
    Usdt,
    Profile, Interval, Software, Hardware,
    Fentry, Fexit, TpBtf, Lsm,
)

#: Kinds other tools know that ebpfhooks does not attach (a clear refusal, not a typo).
#: bpftrace's probe words and libbpf's SEC() prefixes (its ``section_defs`` table in
#: libbpf.c: ``fmod_ret``, ``lsm.s``, ``freplace``... are BPF_MODIFY_RETURN, sleepable
#: LSM and EXT programs, not spellings of fentry or lsm).
OTHER_KINDS = frozenset({
    "watchpoint", "asyncwatchpoint", "begin", "end",
    "ksyscall", "kretsyscall", "kprobe.multi", "kretprobe.multi", "uprobe.multi",
    "uretprobe.multi", "uprobe.s", "uretprobe.s", "fentry.s", "fexit.s", "tc", "tcx",
    "cgroup", "iter", "struct_ops", "sk_skb", "sk_msg", "perf_event", "socket",
    "flow_dissector", "netfilter", "fmod_ret", "fmod_ret.s", "lsm.s", "lsm_cgroup",
    "freplace",
})


class Registry:
    """The kinds by every word that names them (case-insensitive): what the parser reads."""

    __slots__ = ("_by_word", "canonical", "kinds", "other", "words")

    def __init__(self, kinds: Sequence[type[Hook]], other: frozenset[str]) -> None:
        self.kinds = tuple(kinds)
        self.other = other
        self.canonical = tuple(k.kind for k in self.kinds)
        self._by_word: dict[str, type[Hook]] = {}
        for kind in self.kinds:
            for word in (kind.kind, *kind.aliases, *kind.libbpf):
                had = self._by_word.setdefault(word.lower(), kind)
                assert had is kind, f"{word!r} names both {had.kind} and {kind.kind}"
        self.words = tuple(self._by_word)

    def get(self, word: str) -> type[Hook] | None:
        """The kind ``word`` names, in any case, or ``None``."""
        return self._by_word.get(word.lower())

    def all(self) -> Sequence[type[Hook]]:
        """Every kind, in the registry's order."""
        return self.kinds


REGISTRY = Registry(KINDS, OTHER_KINDS)


def parse(text: str) -> Hook:
    """Parse a hook spec (bpftrace or libbpf spelling) into a hook (``ebpfhooks.from_spec``).

    >>> import ebpfhooks
    >>> ebpfhooks.from_spec("uretprobe:/bin/bash:readline")
    Uretprobe(binary='/bin/bash', location=Symbol(name='readline', offset=0), pid=None)

    Raises :class:`ebpfhooks.SpecError` whose message shows the spec with a caret under
    the offending column and says what was expected there.
    """
    from ebpfhooks.spec import parse_spec

    return parse_spec(text, REGISTRY)


def parse_pattern(text: str) -> list[Pattern]:
    """Parse a listing pattern: one :class:`Pattern` per kind it can name."""
    from ebpfhooks.spec import parse_pattern as parse_with

    return parse_with(text, REGISTRY)


def kind_of(word: str) -> type[Hook] | None:
    """The kind ``word`` names (``kprobe``, ``k``, ``raw_tp``...), or ``None``."""
    return REGISTRY.get(word)


def __getattr__(name: str) -> object:
    # the link layer imports attrs: loaded only when asked for (``ebpfhooks list`` never is)
    if name in ("Link", "LinkGroup", "Program"):
        from ebpfhooks.hooks import link

        return getattr(link, name)
    raise AttributeError(f"module 'ebpfhooks.hooks' has no attribute {name!r}")


__all__ = [
    "KINDS",
    "REGISTRY",
    "Address",
    "BtfResolution",
    "Fentry",
    "Fexit",
    "FileOffset",
    "Hardware",
    "Hook",
    "InterfaceResolution",
    "Interval",
    "Kprobe",
    "KprobeResolution",
    "Kretprobe",
    "Link",
    "LinkGroup",
    "Lsm",
    "Pattern",
    "PerfEventResolution",
    "Profile",
    "Program",
    "RawSocket",
    "RawTracepoint",
    "RawTracepointResolution",
    "Registry",
    "Resolution",
    "Software",
    "Symbol",
    "TpBtf",
    "Tracepoint",
    "TracepointResolution",
    "Uprobe",
    "UprobeResolution",
    "Uretprobe",
    "Usdt",
    "UsdtResolution",
    "Xdp",
    "XdpMode",
    "kind_of",
    "parse",
    "parse_pattern",
]
