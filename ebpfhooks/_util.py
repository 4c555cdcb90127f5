"""Small helpers shared by the modules below the public API (no I/O here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` names from ``names`` closest to ``name``, best first.

    Names that contain ``name`` (or that ``name`` contains) come first, then
    difflib's fuzzy matches.

    >>> close_matches("vfs_reed", ["vfs_read", "vfs_write", "ksys_read"])
    ['vfs_read', 'vfs_write']
    """
    pool = list(names)
    if not name:
        return []
    out: list[str] = []
    fuzzy = difflib.get_close_matches(name, pool, n=n, cutoff=0.75)
    out.extend(fuzzy)
    if len(out) < n:
        contains = sorted((x for x in pool if name in x and x not in out), key=len)
        out.extend(contains[: n - len(out)])
    if len(out) < n:
        out.extend(difflib.get_close_matches(name, [x for x in pool if x not in out],
                                             n=n - len(out), cutoff=0.6))
    return out[:n]
