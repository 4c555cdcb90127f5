"""attrs validators shared by the hook classes: every bad field is a SpecError."""

from __future__ import annotations

from collections.abc import Callable

from ebpfhooks.errors import SpecError
from ebpfhooks.names import Problem


def validated(check: Callable[[str], Problem | None], field: str) -> Callable[..., None]:
    def validate(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, str):
            raise SpecError(f"{field} must be a str, got {type(value).__name__} {value!r}")
        problem = check(value)
        if problem is not None:
            col, length, msg = problem
            raise SpecError(f"{field}: {msg}", spec=value, column=col, length=length)
    return validate


def optional(check: Callable[[str], Problem | None], field: str) -> Callable[..., None]:
    inner = validated(check, field)

    def validate(inst: object, attr: object, value: object) -> None:
        if value is not None:
            inner(inst, attr, value)
    return validate


def non_negative(field: str) -> Callable[..., None]:
    def validate(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpecError(f"{field} must be a non-negative int, got {value!r}")
        if value >= 1 << 63:
            raise SpecError(f"{field} {value:#x} is out of range (below 2**63 expected)")
    return validate
