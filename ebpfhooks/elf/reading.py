"""How ElfFile reads: a descriptor-less stream, lazy mappings, pyelftools' errors, its import.

``_PreadStream`` serves pyelftools' small reads from a few cached blocks and opens the
file only for a read that misses; ``_Incremental`` fills a mapping only as far as a
lookup needs; ``_parsing`` turns pyelftools' errors on a damaged file into
:class:`~ebpfhooks.errors.NotAnElfError` naming it, and ``_tolerated`` skips an optional
table that does not parse; ``_pyelftools`` imports pyelftools on first use (a
:class:`~ebpfhooks.errors.NotSupportedError` saying how to install it when it is
missing) and ``_check_magic`` refuses what is not ELF::

    >>> dict(_Incremental(iter([(1, "a"), (2, "b"), (1, "c")])))
    {1: 'a', 2: 'b'}
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from ebpfhooks.errors import EbpfHooksError, NotAnElfError, NotSupportedError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

__all__: list[str] = []

_V = TypeVar("_V")


class _PreadStream:
    """A read-only, seekable view of a file that holds no descriptor between reads.

    pyelftools reads headers a few bytes at a time: reads up to :attr:`BLOCK` bytes are
    served from a few cached blocks, larger ones (symbol tables) are read directly.
    The file is opened for each read that misses, so a cache of loaded files keeps no
    descriptor open.
    """

    _SHIFT = 16
    BLOCK = 1 << _SHIFT
    _MASK = BLOCK - 1
    KEEP = 4

    def __init__(self, path: pathlib.Path, size: int) -> None:
        self._path = path
        self._size = size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _pread(self, offset: int, size: int) -> bytes:
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def _block(self, index: int) -> bytes:
        got = self._blocks.get(index)
        if got is None:
            got = self._pread(index * self.BLOCK, self.BLOCK)
            if len(self._blocks) >= self.KEEP:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[index] = got
        return got

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        if size is not None and size >= 0 and (pos & self._MASK) + size <= self.BLOCK:
            # the usual call: a header field inside one block
            block = self._blocks.get(pos >> self._SHIFT)
            if block is None:
                block = self._block(pos >> self._SHIFT)
            start = pos & self._MASK
            data = block[start:start + size]
            self._pos = pos + len(data)
            return data
        # header fields are untrusted: never read (or allocate) past the end of the file
        end = self._size if size is None or size < 0 else min(self._size, pos + size)
        if end <= pos:
            return b""
        if end - pos > self.BLOCK:
            data = self._pread(pos, end - pos)
        else:
            first, last = pos >> self._SHIFT, (end - 1) >> self._SHIFT
            data = b"".join(self._block(i) for i in range(first, last + 1))
            start = pos - first * self.BLOCK
            data = data[start:start + end - pos]
        self._pos = pos + len(data)
        return data


@contextlib.contextmanager
def _parsing(name: str, what: str) -> Iterator[None]:
    """Turn pyelftools' errors on a damaged file into NotAnElfError naming ``name``."""
    try:
        yield
    except (EbpfHooksError, OSError):
        raise
    except Exception as err:  # pyelftools raises ELFError, construct and builtin errors
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise NotAnElfError(
            f"{name} is a damaged ELF file: its {what} does not parse "
            f"({type(err).__name__}{': ' + detail if detail else ''}); "
            "the file is truncated or corrupt: give an intact executable or library"
        ) from err


@contextlib.contextmanager
def _tolerated() -> Iterator[None]:
    """Skip an optional table pyelftools cannot parse (damaged); I/O errors pass."""
    try:
        yield
    except OSError:
        raise
    except Exception:  # pyelftools raises ELFError, construct and builtin errors
        return


class _Incremental(Mapping[int, _V]):
    """A read-only mapping filled from ``(key, value)`` pairs only as far as a lookup needs.

    The first value of a key wins. An error while producing pairs ends them.
    """

    def __init__(self, pairs: Iterator[tuple[int, _V]]) -> None:
        self._got: dict[int, _V] = {}
        self._more: Iterator[tuple[int, _V]] | None = pairs

    def _until(self, key: int | None) -> None:
        while self._more is not None and (key is None or key not in self._got):
            try:
                k, v = next(self._more)
            except StopIteration:
                self._more = None
            except OSError:
                raise
            except Exception:  # pyelftools on a damaged table: what was read stays
                self._more = None
            else:
                self._got.setdefault(k, v)

    def __getitem__(self, key: int) -> _V:
        self._until(key)
        return self._got[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        self._until(key)
        return key in self._got

    def __iter__(self) -> Iterator[int]:
        self._until(None)
        return iter(self._got)

    def __len__(self) -> int:
        self._until(None)
        return len(self._got)


def _pyelftools() -> tuple[type[ELFFile], Mapping[str, int]]:
    """pyelftools' ``ELFFile`` and its ``e_machine`` names, imported on first use."""
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.enums import ENUM_E_MACHINE
    except ImportError as err:
        raise NotSupportedError(
            f"ebpfhooks reads uprobe targets with pyelftools, which cannot be imported "
            f"({err}); install it: pip install 'pyelftools>=0.32'",
            missing="pyelftools") from err
    return ELFFile, ENUM_E_MACHINE


def _check_magic(head: bytes, name: str) -> None:
    if len(head) < 4 or head[:4] != b"\x7fELF":
        hint = " (it is a script)" if head[:2] == b"#!" else ""
        raise NotAnElfError(
            f"{name} is not an ELF file{hint}: it starts with {head[:4]!r}, expected "
            "b'\\x7fELF'; give the path of a compiled executable or shared library"
        )
