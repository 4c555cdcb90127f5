"""Errors of user-space target resolution (they live in :mod:`ebpfhooks.errors`)."""

from __future__ import annotations

from ebpfhooks.errors import AddressNotExecutableError, OffsetOutOfRangeError

__all__ = ["AddressNotExecutableError", "OffsetOutOfRangeError"]
