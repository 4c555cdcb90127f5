"""The kernel symbol table (``/proc/kallsyms``): parse it once, index it, answer lookups.

:func:`parse_kallsyms` is the pure, readable parser (one :class:`KSym` per line);
:class:`Kallsyms` is the compact index built from the whole file (parallel arrays and a
``name -> row`` dict, no per-symbol objects until asked); :func:`read` reads the live
file once per process and :func:`index` indexes it once::

    from ebpfhooks.kernel.kallsyms import index
    table = index()
    "do_sys_openat2" in table                  # True
    table.variants("calibrate_delay")          # ['calibrate_delay.cold']
    table.syscall_prefix()                     # '__x64_sys_' on x86-64

Reading the file is about 45 ms of kernel time for ~120k lines; indexing it here takes
about as long again, so listings filter the bytes instead (:func:`functions`,
:func:`traceiters`, :func:`select`). As non-root (or with ``kernel.kptr_restrict``)
every address reads as 0: :attr:`Kallsyms.addresses_hidden` is then true and no address
is presented as real.
"""

from __future__ import annotations

import os
import re
import sys
from array import array
from collections.abc import Callable, Iterator
from itertools import compress
from operator import ne
from pathlib import Path

import attrs

from ebpfhooks._util import close_matches as _close_matches
from ebpfhooks.errors import (
    HookPermissionError,
    KallsymsFormatError,
    SymbolNotFoundError,
)

__all__ = [
    "KALLSYMS_FILE",
    "KSym",
    "Kallsyms",
    "KallsymsFormatError",
    "clear_cache",
    "functions",
    "index",
    "parse_kallsyms",
    "read",
    "select",
    "strip_variant_suffix",
    "traceiters",
]

#: The live symbol table.
KALLSYMS_FILE = Path("/proc/kallsyms")

_TYPE_DESCRIPTIONS: dict[str, str] = {
    "a": "absolute value",
    "b": "uninitialised data (bss)",
    "c": "common (uninitialised) data",
    "d": "initialised data",
    "g": "initialised data, small objects section",
    "i": "indirect function (IFUNC)",
    "n": "debugging symbol",
    "p": "stack unwind section",
    "r": "read-only data",
    "s": "uninitialised data, small objects section",
    "t": "text (code)",
    "u": "undefined, or a unique global",
    "v": "weak object",
    "w": "weak symbol (text in the kernel)",
}

#: Type letters treated as functions: text (T/t) and weak (W/w, the kernel's ``__weak``
#: functions). The same set bcc uses for kprobe targets.
FUNCTION_TYPES = frozenset("TtWw")

_VARIANT_SUFFIX = re.compile(
    r"(?:\.(?:isra|constprop|part|llvm|lto_priv|localalias|specialized)\.\d+"
    r"|\.cold(?:\.\d+)?)+$"
)

#: Symbols the compiler emits in front of each function for call padding (6.2+, x86).
_PADDING_PREFIX = "__pfx_"




@attrs.frozen
class KSym:
    """One kernel symbol: ``address``, one-letter ``type`` as in the file, ``name``, ``module``.

    ``module`` is ``None`` for the core kernel. Upper-case types are global, lower-case
    local. ``address_hidden`` is true when the table hid addresses (they read as 0);
    use :attr:`real_address` to get ``None`` rather than a fake 0 then.

    >>> sym = KSym(0xFFFFFFFFA05EF110, "t", "nf_conntrack_in", "nf_conntrack")
    >>> sym.is_function, sym.type_description
    (True, 'local text (code)')
    """

    address: int
    type: str
    name: str
    module: str | None = None
    address_hidden: bool = False

    @property
    def type_description(self) -> str:
        """Explain the type letter, e.g. ``T`` -> ``'global text (code)'``.

        >>> KSym(0, "D", "x").type_description
        'global initialised data'
        """
        what = _TYPE_DESCRIPTIONS.get(self.type.lower())
        if what is None:
            return f"unknown symbol type {self.type!r}"
        if self.type in "AaUuNn":
            return what
        scope = "global" if self.type.isupper() else "local"
        return f"{scope} {what}"

    @property
    def is_function(self) -> bool:
        """True for text (``T``/``t``) and weak (``W``/``w``) symbols: possible kprobe targets.

        >>> KSym(0, "w", "arch_foo").is_function, KSym(0, "d", "jiffies").is_function
        (True, False)
        """
        return self.type in FUNCTION_TYPES

    @property
    def real_address(self) -> int | None:
        """The address, or ``None`` when the table hid addresses (kptr_restrict, non-root).

        >>> KSym(0, "T", "vfs_read", address_hidden=True).real_address is None
        True
        """
        return None if self.address_hidden else self.address

    def __str__(self) -> str:
        addr = "(hidden)" if self.address_hidden else f"{self.address:#018x}"
        mod = f" [{self.module}]" if self.module else ""
        return f"{addr} {self.type} {self.name}{mod}"


def strip_variant_suffix(name: str) -> str:
    """Remove compiler clone suffixes (``.isra.0``, ``.constprop.1``, ``.part.0``, ``.cold``).

    >>> strip_variant_suffix("tcp_v4_rcv.isra.0.cold")
    'tcp_v4_rcv'
    >>> strip_variant_suffix("vfs_read")
    'vfs_read'
    """
    return _VARIANT_SUFFIX.sub("", name)


def _parse_line(line: str, number: int) -> tuple[int, str, str, str | None]:
    parts = line.split()
    if len(parts) not in (3, 4):
        raise KallsymsFormatError(
            f"expected 'ADDRESS TYPE NAME' optionally followed by '[MODULE]', got {line!r}",
            line=number,
        )
    try:
        address = int(parts[0], 16)
    except ValueError:
        raise KallsymsFormatError(
            f"expected a hexadecimal address, got {parts[0]!r} in {line!r}", line=number
        ) from None
    if len(parts[1]) != 1:
        raise KallsymsFormatError(
            f"expected a one-letter symbol type, got {parts[1]!r} in {line!r}", line=number
        )
    module: str | None = None
    if len(parts) == 4:
        raw = parts[3]
        if not (raw.startswith("[") and raw.endswith("]") and len(raw) > 2):
            raise KallsymsFormatError(
                f"expected a module name in brackets like [ext4], got {raw!r}", line=number
            )
        module = raw[1:-1]
    return address, parts[1], parts[2], module


def parse_kallsyms(text: str) -> list[KSym]:
    """Parse kallsyms text into one :class:`KSym` per line (pure, no I/O).

    Grammar: ``ADDRESS SP TYPE SP NAME [TAB '[' MODULE ']']`` per line, ADDRESS in hex.
    Empty lines are skipped. If every address is 0 the symbols are marked
    ``address_hidden``. For the live file use :func:`kallsyms`, which is faster and
    smaller than a list of objects.

    >>> parse_kallsyms("ffffffffa05ef110 t nf_conntrack_in\\t[nf_conntrack]\\n")[0].module
    'nf_conntrack'

    Raises:
        KallsymsFormatError: a malformed line; the message quotes it with its number.
    """
    rows = [
        _parse_line(line, number)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]
    hidden = bool(rows) and all(row[0] == 0 for row in rows)
    return [KSym(a, t, n, m, hidden) for a, t, n, m in rows]


class Kallsyms:
    """An index over a whole kallsyms table: exact lookup, functions, clones, close matches.

    Built once with :meth:`from_text` / :meth:`from_bytes` (or :func:`kallsyms` for the
    live file). Storage is compact: a list of names, a string of type letters, an
    ``array('Q')`` of addresses, a sparse module map and one ``name -> row`` dict.

    >>> table = Kallsyms.from_text("ffffffff81000000 T _stext\\nffffffff81001000 t foo\\n"
    ...                            "ffffffff81002000 t foo\\nffffffff81003000 t foo.isra.0\\n")
    >>> [hex(s.address) for s in table.lookup("foo")], table.variants("foo")
    (['0xffffffff81001000', '0xffffffff81002000'], ['foo.isra.0'])
    """

    __slots__ = (
        "_addresses",
        "_dups",
        "_hidden",
        "_index",
        "_modules",
        "_names",
        "_types",
        "_variants",
    )

    def __init__(
        self,
        names: list[str],
        types: str,
        addresses: array[int],
        modules: dict[int, str] | None = None,
    ) -> None:
        """Build the index from parallel columns (row ``i`` is ``names[i]``, ``types[i]``...).

        >>> len(Kallsyms(["a"], "T", array("Q", [1])))
        1
        """
        if not len(names) == len(types) == len(addresses):
            raise ValueError(
                f"Kallsyms columns must have equal lengths, got {len(names)} names, "
                f"{len(types)} types and {len(addresses)} addresses"
            )
        self._names = names
        self._types = types
        self._addresses = addresses
        self._modules = modules or {}
        self._hidden = bool(names) and addresses.count(0) == len(addresses)
        index = dict(zip(names, range(len(names)), strict=True))  # last row wins
        dups: dict[str, list[int]] = {}
        if len(index) != len(names):
            # rows that are not the last of their name, found with C-level iterators
            rows = range(len(names))
            earlier = compress(rows, map(ne, map(index.__getitem__, names), rows))
            for row in earlier:
                dups.setdefault(names[row], []).append(row)
            for name, found in dups.items():
                found.append(index[name])
        self._index = index
        self._dups = {name: tuple(rows) for name, rows in dups.items()}
        self._variants: dict[str, list[str]] | None = None

    # -- construction -----------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> Kallsyms:
        """Index kallsyms given as bytes (as read from ``/proc/kallsyms`` in binary mode).

        >>> Kallsyms.from_bytes(b"0000000000000000 T vfs_read\\n").addresses_hidden
        True
        """
        return cls.from_text(data.decode("utf-8", errors="surrogateescape"))

    @classmethod
    def from_text(cls, text: str) -> Kallsyms:
        """Index kallsyms text; lines of one fixed address width take a fast path.

        >>> "vfs_read" in Kallsyms.from_text("ffffffff81000000 T vfs_read\\n")
        True

        Raises:
            KallsymsFormatError: a malformed line.
        """
        fast = _fast_columns(text)
        if fast is not None:
            return cls(*fast)
        lines = text.splitlines()
        names: list[str] = []
        types: list[str] = []
        addresses: array[int] = array("Q")
        modules: dict[int, str] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            address, kind, name, module = _parse_line(line, number)
            if module is not None:
                modules[len(names)] = module
            names.append(name)
            types.append(kind)
            addresses.append(address)
        return cls(names, "".join(types), addresses, modules)

    # -- queries ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        hidden = ", addresses hidden" if self._hidden else ""
        return f"<Kallsyms {len(self._names)} symbols{hidden}>"

    @property
    def addresses_hidden(self) -> bool:
        """True when every address is 0 (``kptr_restrict``, or not root): do not show them.

        >>> Kallsyms.from_text("0000000000000000 T a\\n0000000000000000 t b\\n").addresses_hidden
        True
        """
        return self._hidden

    def _sym(self, row: int) -> KSym:
        return KSym(
            self._addresses[row],
            self._types[row],
            self._names[row],
            self._modules.get(row),
            self._hidden,
        )

    def lookup(self, name: str) -> list[KSym]:
        """Return every symbol called exactly ``name``, in file order (empty if none).

        Several static functions in different files can share a name.

        >>> table = Kallsyms.from_text("ffffffff81000000 t f\\nffffffff81000100 t f\\n")
        >>> [hex(sym.address) for sym in table.lookup("f")]
        ['0xffffffff81000000', '0xffffffff81000100']
        """
        rows = self._dups.get(name)
        if rows is None:
            row = self._index.get(name)
            if row is None:
                return []
            rows = (row,)
        return [self._sym(row) for row in rows]

    def require(self, name: str, *, functions_only: bool = False) -> list[KSym]:
        """Like :meth:`lookup` but raise when nothing matches.

        >>> Kallsyms.from_text("ffffffff81000000 T vfs_read\\n").require("vfs_read")[0].type
        'T'

        Raises:
            SymbolNotFoundError: no such symbol (or no function of that name when
                ``functions_only``); ``candidates`` holds clones and close matches.
        """
        found = self.lookup(name)
        if functions_only:
            found = [sym for sym in found if sym.is_function]
        if found:
            return found
        raise SymbolNotFoundError(
            name,
            where=str(KALLSYMS_FILE),
            candidates=self.close_matches(name),
            hint="kernel function names change between versions; "
            "grep /proc/kallsyms for the one this kernel has",
        )

    def functions(self, *, include_padding: bool = False) -> Iterator[KSym]:
        """Yield every function symbol (types ``T``, ``t``, ``W``, ``w``) in file order.

        ``__pfx_*`` symbols (call padding in front of functions, kernel 6.2+ on x86) are
        left out unless ``include_padding``.

        >>> [s.name for s in Kallsyms.from_text(
        ...     "ffffffff81000000 t __pfx_f\\nffffffff81000010 t f\\nffffffff82000000 D d\\n"
        ... ).functions()]
        ['f']
        """
        types = self._types
        names = self._names
        for row in range(len(names)):
            if types[row] in FUNCTION_TYPES and (
                include_padding or not names[row].startswith(_PADDING_PREFIX)
            ):
                yield self._sym(row)

    def _variant_index(self) -> dict[str, list[str]]:
        if self._variants is None:
            index: dict[str, list[str]] = {}
            for name in [n for n in self._index if "." in n]:
                base = _VARIANT_SUFFIX.sub("", name)
                if base != name:
                    index.setdefault(base, []).append(name)
            for clones in index.values():
                clones.sort()
            self._variants = index
        return self._variants

    def variants(self, name: str) -> list[str]:
        """Return compiler-renamed clones of function ``name`` (``name.isra.0``, ``name.cold``...).

        Suffixes recognised: ``.isra.N``, ``.constprop.N``, ``.part.N``, ``.llvm.N``,
        ``.lto_priv.N``, ``.localalias.N``, ``.specialized.N`` and ``.cold`` (in any
        combination). The list is sorted and never contains ``name`` itself.

        >>> Kallsyms.from_text("ffffffff81000000 t g.constprop.0.isra.0\\n").variants("g")
        ['g.constprop.0.isra.0']
        """
        return list(self._variant_index().get(strip_variant_suffix(name), ()))

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """Return up to ``n`` existing names close to ``name``: clones first, then look-alikes.

        Only names sharing the first or last three characters (within a length window),
        or containing ``name`` (4+ characters), are compared, so a miss costs tens of
        milliseconds on a 120k-symbol table. ``__pfx_*`` padding symbols are skipped
        unless ``name`` itself starts with ``__pfx_``.

        >>> Kallsyms.from_text("ffffffff81000000 t vfs_read\\n").close_matches("vfs_reed")
        ['vfs_read']
        """
        if not name or n <= 0:
            return []
        out = [v for v in self.variants(name) if v != name][:n]
        length = len(name)
        window = max(2, length // 4)
        head, tail = name[:3], name[-3:]
        pool = [
            x
            for x in self._index
            if (
                (abs(len(x) - length) <= window and (x.startswith(head) or x.endswith(tail)))
                or (length >= 4 and name in x)
            )
        ]
        if not name.startswith(_PADDING_PREFIX):
            pool = [x for x in pool if not x.startswith(_PADDING_PREFIX)]
        pool = [x for x in pool if x != name and x not in out]
        out.extend(_close_matches(name, pool, n=n - len(out)) if len(out) < n else [])
        return out[:n]

    def syscall_prefix(self, machine: str | None = None) -> str:
        """Return the prefix of syscall entry functions: ``__x64_sys_``, ``sys_``, ...

        Checks which ``<prefix>bpf`` (or ``<prefix>close``) symbol exists, trying the
        native prefix for ``machine`` (default: ``os.uname().machine``) first, since x86-64
        also has ``__ia32_sys_*``.

        >>> Kallsyms.from_text("ffffffff81000000 T __ia32_sys_bpf\\n"
        ...                    "ffffffff81000100 T __x64_sys_bpf\\n").syscall_prefix("x86_64")
        '__x64_sys_'

        Minimum kernel: 4.17 introduced the arch prefixes; older kernels answer ``sys_``.

        Raises:
            SymbolNotFoundError: no syscall entry symbol is found at all.
        """
        arch = machine if machine is not None else os.uname().machine
        order = [_NATIVE_SYSCALL_PREFIX.get(arch, "")]
        order += [p for p in _SYSCALL_PREFIXES if p not in order]
        for syscall in ("bpf", "close"):
            for prefix in order:
                if prefix and prefix + syscall in self._index:
                    return prefix
        raise SymbolNotFoundError(
            "sys_bpf",
            where=str(KALLSYMS_FILE),
            candidates=[p + "bpf" for p in order if p][:5],
            hint="no syscall entry symbol (tried prefixes "
            + ", ".join(p for p in order if p)
            + "); is this a kallsyms table of a kernel with CONFIG_KALLSYMS_ALL?",
        )


_NATIVE_SYSCALL_PREFIX = {
    "x86_64": "__x64_sys_",
    "aarch64": "__arm64_sys_",
    "arm64": "__arm64_sys_",
    "s390x": "__s390x_sys_",
    "riscv64": "__riscv_sys_",
    "i386": "__ia32_sys_",
    "i686": "__ia32_sys_",
}
_SYSCALL_PREFIXES = (
    "__x64_sys_",
    "__arm64_sys_",
    "__s390x_sys_",
    "__riscv_sys_",
    "__ia32_sys_",
    "__se_sys_",
    "sys_",
)


def _fast_columns(text: str) -> tuple[list[str], str, array[int], dict[int, str]] | None:
    """Split well-formed kallsyms text into columns with C-speed operations.

    Lines without a module come first in the kernel's output; they are split in one
    ``str.split()`` and sliced by stride 3. Lines from the first ``\\t[module]`` on are
    parsed one by one. Returns ``None`` when the text is not uniform (the caller then
    parses line by line and reports the bad line).
    """
    tab = text.find("\t")
    cut = len(text) if tab < 0 else text.rfind("\n", 0, tab) + 1
    core = text[:cut]
    tokens = core.split()
    count = core.count("\n") + (1 if core and not core.endswith("\n") else 0)
    if not tokens or len(tokens) != 3 * count:
        return None
    names: list[str] = tokens[2::3]
    types = "".join(tokens[1::3])
    hexes = tokens[0::3]
    width = len(hexes[0])
    joined = "".join(hexes)
    if width not in (8, 16) or len(types) != count or len(joined) != width * count:
        return None
    try:
        raw = bytes.fromhex(joined)
    except ValueError:
        return None
    if len(raw) != count * width // 2:
        return None
    big_endian: array[int] = array("Q" if width == 16 else "I")
    big_endian.frombytes(raw)
    if sys.byteorder == "little":
        big_endian.byteswap()
    addresses = big_endian if width == 16 else array("Q", big_endian)
    del tokens, hexes, joined, raw, core
    modules: dict[int, str] = {}
    type_list = [types]
    for number, line in enumerate(text[cut:].splitlines(), count + 1):
        if not line.strip():
            continue
        address, kind, name, module = _parse_line(line, number)
        if module is not None:
            modules[len(names)] = module
        names.append(name)
        type_list.append(kind)
        addresses.append(address)
    return names, "".join(type_list), addresses, modules


_data: dict[Path, bytes] = {}
_index: dict[Path, Kallsyms] = {}


def read(path: Path = KALLSYMS_FILE, reload: bool = False) -> bytes:
    """The raw bytes of ``/proc/kallsyms``, read once per process (one binary ``read``).

    >>> b" T " in read()  # doctest: +SKIP
    True

    Raises:
        HookPermissionError: the file cannot be read.
    """
    path = Path(path)
    data = None if reload else _data.get(path)
    if data is None:
        try:
            with path.open("rb") as handle:
                data = handle.read()
        except PermissionError as err:
            raise HookPermissionError(
                f"cannot read {path}: permission denied; rerun as root",
                capability="CAP_SYSLOG",
            ) from err
        _data[path] = data
        _index.pop(path, None)
    return data


def index(reload: bool = False, path: Path = KALLSYMS_FILE) -> Kallsyms:
    """The :class:`Kallsyms` index of the live table (built once from :func:`read`).

    Cached for the process; ``reload=True`` reads the file again (after loading a module).

    >>> index().lookup("do_sys_openat2")[0].type  # doctest: +SKIP
    't'

    Raises:
        HookPermissionError: the file cannot be read.
        KallsymsFormatError: the file is not in kallsyms format.
    """
    path = Path(path)
    data = read(path, reload)
    table = _index.get(path)
    if table is None:
        table = _index[path] = Kallsyms.from_bytes(data)
    return table


_FUNCTION_LINE = re.compile(
    rb"^[0-9a-fA-F]+ [TtWw] ([A-Za-z_][A-Za-z0-9_.]*)(?:\t\[([A-Za-z0-9_-]+)\])?$", re.M
)
# starts with a literal, so the regex engine skips ahead with a fast search
_TRACEITER = re.compile(rb"__traceiter_([A-Za-z0-9_]+)(?:\t\[([A-Za-z0-9_-]+)\])?\n")


def functions(data: bytes) -> list[tuple[str | None, str]]:
    """(module or ``None``, name) of every function symbol (T/t/W/w) but ``__pfx_`` padding.

    >>> functions(b"ffffffff81000000 T vfs_read\\nffffffffa0000000 t f\\t[m]\\n")
    [(None, 'vfs_read'), ('m', 'f')]

    One regular expression over the raw bytes: a listing of every kernel function costs
    no per-symbol objects.
    """
    return [(mod.decode() if mod else None, name.decode())
            for name, mod in _FUNCTION_LINE.findall(data) if not name.startswith(b"__pfx_")]


def traceiters(data: bytes) -> list[tuple[str | None, str]]:
    """(module or ``None``, NAME) of every ``__traceiter_NAME`` symbol: the tracepoints.

    >>> traceiters(b"ffffffff81000000 T __traceiter_sched_switch\\n")
    [(None, 'sched_switch')]
    """
    out = []
    for m in _TRACEITER.finditer(data):
        if data[m.start() - 1] == 0x20:  # preceded by "TYPE ": not __pfx___traceiter_
            mod = m.group(2)
            out.append((mod.decode() if mod else None, m.group(1).decode()))
    return out


def select(
    data: bytes,
    name: Callable[[str], bool] | None = None,
    *,
    module: Callable[[str], bool] | None = None,
    types: str | None = None,
) -> list[KSym]:
    """The symbols of kallsyms ``data`` whose name, module and type letter fit (no I/O).

    ``name`` and ``module`` test a name (the core kernel's module is ``vmlinux``);
    ``types`` holds the type letters wanted (case matters: ``T`` global text, ``t``
    local). Hidden addresses (all zero: ``kptr_restrict``, or not root) are marked on
    every symbol, never presented as real.

    >>> [str(s) for s in select(b"0000000000000000 T vfs_read\\n"
    ...                          b"0000000000000000 t nf_hook\\t[nf_tables]\\n",
    ...                          lambda n: n.startswith("nf_"))]
    ['(hidden) t nf_hook [nf_tables]']

    Raises :class:`KallsymsFormatError` for a malformed line that fits.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    hidden = re.search(r"^0*[1-9a-fA-F][0-9a-fA-F]* ", text, re.M) is None and bool(
        text.strip())
    picked: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        if name is not None and not name(parts[2]):
            continue
        if types is not None and parts[1] not in types:
            continue
        if module is not None and not module(parts[3][1:-1] if len(parts) > 3 else "vmlinux"):
            continue
        picked.append(line)
    return [KSym(s.address, s.type, s.name, s.module, hidden)
            for s in parse_kallsyms("\n".join(picked))]


def clear_cache() -> None:
    """Forget what was read and indexed (the next call reads /proc/kallsyms again).

    >>> clear_cache()
    """
    _data.clear()
    _index.clear()
