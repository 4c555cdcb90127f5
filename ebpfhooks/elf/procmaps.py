"""Parse ``/proc/PID/maps`` and find the files a process has mapped.

Line format (proc(5)): ``start-end perms offset major:minor inode  pathname``;
the pathname may contain spaces and may end in ``" (deleted)"``.

>>> parse_proc_maps("55d0-55d1 r-xp 00001000 08:01 1234   /usr/bin/cat\\n")[0].path
'/usr/bin/cat'
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MapEntry", "mapped_files", "parse_proc_maps"]


class MapEntry(NamedTuple):
    """One mapping of a process."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str  #: '' for anonymous mappings; '[heap]', '[stack]' ... for special ones
    deleted: bool = False

    @property
    def is_file(self) -> bool:
        """True when the mapping is backed by a file (an absolute path)."""
        return self.path.startswith("/")


def parse_proc_maps(text: str) -> list[MapEntry]:
    """Parse the text of ``/proc/PID/maps`` into :class:`MapEntry` values.

    >>> parse_proc_maps("7f00-7f01 r-xp 00000000 00:00 0 \\n")[0].path
    ''
    >>> parse_proc_maps("bad line")
    Traceback (most recent call last):
    ...
    ValueError: /proc/PID/maps line 1 is not 'start-end perms offset dev inode [path]': 'bad line'

    Raises ``ValueError`` naming the line that does not parse.
    """
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 5)
        try:
            start_s, end_s = parts[0].split("-")
            start, end = int(start_s, 16), int(end_s, 16)
            perms, offset, dev, inode = parts[1], int(parts[2], 16), parts[3], int(parts[4])
        except (ValueError, IndexError):
            raise ValueError(
                f"/proc/PID/maps line {lineno} is not 'start-end perms offset dev inode [path]': "
                f"{line[:100]!r}"
            ) from None
        path = parts[5].strip() if len(parts) > 5 else ""
        deleted = path.endswith(" (deleted)")
        if deleted:
            path = path[: -len(" (deleted)")]
        out.append(MapEntry(start, end, perms, offset, dev, inode, path, deleted))
    return out


def mapped_files(entries: list[MapEntry]) -> list[str]:
    """The distinct file paths of ``entries``, in order of first mapping.

    >>> mapped_files(parse_proc_maps("1-2 r-xp 0 08:01 5 /a\\n3-4 r--p 0 08:01 5 /a\\n"))
    ['/a']
    """
    seen: dict[str, None] = {}
    for e in entries:
        if e.is_file and not e.deleted:
            seen.setdefault(e.path, None)
    return list(seen)
