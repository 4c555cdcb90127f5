"""The compact index of a whole kallsyms table: :class:`Kallsyms`.

Parallel columns (names, a string of type letters, an ``array('Q')`` of addresses, a
sparse module map) and one ``name -> row`` dict; no per-symbol objects until asked.
Well-formed text of one address width is split with C-speed operations::

    >>> table = Kallsyms.from_text("ffffffff81000000 T __x64_sys_bpf\\n"
    ...                            "ffffffff81001000 t vfs_read\\n")
    >>> "vfs_read" in table, table.syscall_prefix("x86_64")
    (True, '__x64_sys_')
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Iterator
from itertools import compress
from operator import ne

from ebpfhooks._util import close_matches as _close_matches
from ebpfhooks.errors import SymbolNotFoundError
from ebpfhooks.kernel.kallsyms.parse import (
    _PADDING_PREFIX,
    _VARIANT_SUFFIX,
    FUNCTION_TYPES,
    KALLSYMS_FILE,
    KSym,
    _parse_line,
    strip_variant_suffix,
)

__all__ = ["Kallsyms"]

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
        names: list[str] = []
        types: list[str] = []
        addresses: array[int] = array("Q")
        modules: dict[int, str] = {}
        _parse_lines(text, 1, names, types, addresses, modules)
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
    _parse_lines(text[cut:], count + 1, names, type_list, addresses, modules)
    return names, "".join(type_list), addresses, modules


def _parse_lines(text: str, first: int, names: list[str], types: list[str],
                 addresses: array[int], modules: dict[int, str]) -> None:
    """Append each line of ``text`` (numbered from ``first``) to the columns, one by one."""
    for number, line in enumerate(text.splitlines(), first):
        if not line.strip():
            continue
        address, kind, name, module = _parse_line(line, number)
        if module is not None:
            modules[len(names)] = module
        names.append(name)
        types.append(kind)
        addresses.append(address)
