"""A BTF file's header and string section, read without parsing its types.

``ebpfhooks list`` needs only names from the kernel's BTF (the ``btf_trace_NAME``
strings, :mod:`ebpfhooks.kernel.rawtp`): this module reads them without importing the
:mod:`ebpfhooks.kernel.btf` package (its type parser, ``array``, pathlib: ~7 ms of a
command that ``bpftrace -l`` answers in ~45). The package re-exports every public name
here, which is where to import them from::

    >>> raw_tracepoint_names(b"\\x00btf_trace_sched_switch\\x00int\\x00")
    ['sched_switch']

The header (``include/uapi/linux/btf.h``): magic ``0xeB9F`` (its byte order is the
file's), version 1, flags, header length, then offset and length of the type and string
sections, both relative to the end of the header. Malformed bytes raise
:class:`BtfFormatError`, never another exception.

Minimum kernel: 5.5 for ``/sys/kernel/btf/vmlinux``, 5.11 for module BTF.
"""

from __future__ import annotations

import os
import re
import struct

from ebpfhooks.errors import BtfFormatError

__all__ = ["HEADER", "MAGIC", "raw_tracepoint_names", "read_string_section"]

MAGIC = 0xEB9F
HEADER = 24

#: ``typedef void (*btf_trace_NAME)(void *, ...)``: one per raw tracepoint BPF can open.
_TRACE_TYPEDEF = re.compile(rb"\x00btf_trace_([A-Za-z0-9_]+)(?=\x00)")


def read_string_section(path: str | os.PathLike[str]) -> bytes:
    """Read only the header and the string section of a BTF file.

    >>> b"\\x00vfs_read\\x00" in read_string_section("/sys/kernel/btf/vmlinux")  # doctest: +SKIP
    True

    The kernel hands out sysfs files a page per ``read``; skipping the type section
    halves the reads for vmlinux (2.3 of 5.5 MB on 6.18). A kernel module's BTF
    (``/sys/kernel/btf/MODULE``, split BTF, 5.11+) holds only the strings the module
    adds to vmlinux's. Raises :class:`OSError` if the file cannot be read and
    :class:`BtfFormatError` if it is not BTF.
    """
    with open(path, "rb") as f:
        head = f.read(HEADER)
        size = os.fstat(f.fileno()).st_size
        _, _, (start, end) = _header(head, size)
        f.seek(start)
        strings = f.read(end - start)
    if len(strings) != end - start:
        raise BtfFormatError(f"{path}: string section cut short ({len(strings)} of "
                             f"{end - start} bytes)")
    return _checked_strings(strings)


def raw_tracepoint_names(strings: bytes) -> list[str]:
    """The raw tracepoint names in a BTF string section (its ``btf_trace_NAME`` strings).

    >>> raw_tracepoint_names(b"\\x00btf_trace_sched_switch\\x00int\\x00")
    ['sched_switch']

    The kernel declares ``btf_trace_NAME`` beside each entry of its ``__bpf_raw_tp_map``
    section (``include/trace/bpf_probe.h``), the table ``BPF_RAW_TRACEPOINT_OPEN`` looks
    names up in; a ``__traceiter_`` symbol without one cannot be opened (ENOENT).
    """
    return [m.decode() for m in _TRACE_TYPEDEF.findall(strings)]


def _header(data: bytes, size: int) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """Byte order and the absolute [start, end) of the type and string sections.

    ``data`` holds at least the 24-byte header of a BTF blob of ``size`` bytes.
    """
    if len(data) < HEADER or size < HEADER:
        raise BtfFormatError(f"{min(len(data), size)} bytes, shorter than the "
                             f"{HEADER}-byte header")
    if struct.unpack_from("<H", data)[0] == MAGIC:
        order = "<"
    elif struct.unpack_from(">H", data)[0] == MAGIC:
        order = ">"
    else:
        raise BtfFormatError(f"bad magic {data[:2].hex()} (expected 0xeB9F)")
    _, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + "HBBIIIII", data)
    if version != 1:
        raise BtfFormatError(f"version {version} (only version 1 exists)")
    if hdr_len < HEADER or hdr_len > size:
        raise BtfFormatError(f"header length {hdr_len} (expected {HEADER}..{size})")
    body = size - hdr_len
    for what, off, length in (("type", type_off, type_len), ("string", str_off, str_len)):
        if off + length > body:
            raise BtfFormatError(f"{what} section [{off}, {off + length}) runs past the end "
                                 f"of the data ({body} bytes after the header)")
    if type_off % 4 or type_len % 4:
        raise BtfFormatError(f"type section offset {type_off} / length {type_len} "
                             "not a multiple of 4")
    return (order, (hdr_len + type_off, hdr_len + type_off + type_len),
            (hdr_len + str_off, hdr_len + str_off + str_len))


def _checked_strings(strings: bytes) -> bytes:
    if strings and strings[-1] != 0:
        raise BtfFormatError("the string section does not end with a NUL byte")
    return strings
