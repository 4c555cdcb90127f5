"""Small helpers shared by the modules below the public API (no I/O here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` names from ``names`` closest to ``name``, best first, no repeats.

    difflib's close matches first (similarity 0.75 and up), then names that contain
    ``name`` (shortest first), then looser difflib matches (0.6 and up).

    >>> close_matches("vfs_reed", ["vfs_read", "vfs_write", "ksys_read"])
    ['vfs_read', 'vfs_write']
    >>> close_matches("malloc", ["malloc", "malloc", "valloc", "valloc"])
    ['malloc', 'valloc']
    """
    pool = list(dict.fromkeys(names))  # a name listed twice is one candidate
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
