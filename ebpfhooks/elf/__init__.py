"""User-space (uprobe) targets: find the file, then the offset in it the kernel probes.

>>> from ebpfhooks.elf import resolve_binary, resolve_symbol
>>> print(resolve_symbol(resolve_binary("c"), "malloc"))  # doctest: +SKIP
/usr/lib/x86_64-linux-gnu/libc.so.6:malloc (vaddr 0x9a0f0, file offset 0x9a0f0)

Files are read through pyelftools (:mod:`ebpfhooks.elf.elffile`), imported when the
first file is opened. Nothing here imports bcc or pyelftools, or reads a file, at import
time.
"""

from ebpfhooks.elf.binary import resolve_binary
from ebpfhooks.elf.errors import AddressNotExecutableError, OffsetOutOfRangeError
from ebpfhooks.elf.resolve import (
    UserTarget,
    function_symbols,
    resolve_address,
    resolve_file_offset,
    resolve_symbol,
)
from ebpfhooks.elf.symbols import ElfSymbol

__all__ = [
    "AddressNotExecutableError",
    "ElfSymbol",
    "OffsetOutOfRangeError",
    "UserTarget",
    "function_symbols",
    "resolve_address",
    "resolve_binary",
    "resolve_file_offset",
    "resolve_symbol",
]
