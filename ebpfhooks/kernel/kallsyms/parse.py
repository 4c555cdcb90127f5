"""One kernel symbol (:class:`KSym`) and the pure, readable kallsyms parser.

:func:`parse_kallsyms` turns kallsyms text into one :class:`KSym` per line (no I/O);
:func:`strip_variant_suffix` removes the compiler's clone suffixes from a name::

    >>> parse_kallsyms("ffffffffa05ef110 t nf_conntrack_in\\t[nf_conntrack]\\n")[0].module
    'nf_conntrack'
    >>> strip_variant_suffix("tcp_v4_rcv.isra.0.cold")
    'tcp_v4_rcv'
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from ebpfhooks.errors import KallsymsFormatError

__all__ = ["FUNCTION_TYPES", "KALLSYMS_FILE", "KSym", "parse_kallsyms", "strip_variant_suffix"]

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
