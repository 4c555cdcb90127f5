"""Errors specific to user-space target resolution (proposed for ``ebpfhooks.errors``).

>>> raise OffsetOutOfRangeError("offset 0x100 is past the end of malloc (size 0x80)")
Traceback (most recent call last):
...
ebpfhooks.elf.errors.OffsetOutOfRangeError: offset 0x100 is past the end of malloc (size 0x80)
"""

from __future__ import annotations

from ebpfhooks.errors import EbpfHooksError

__all__ = ["AddressNotExecutableError", "OffsetOutOfRangeError"]


class OffsetOutOfRangeError(EbpfHooksError, ValueError):
    """``sym+off`` with ``off`` negative or not inside the symbol's size."""


class AddressNotExecutableError(EbpfHooksError, ValueError):
    """An address or file offset outside every executable PT_LOAD segment of the file."""
