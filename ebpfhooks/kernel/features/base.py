"""The answer of a feature probe (:class:`Feature`), its cache, and the pure parsers.

A :class:`Feature` says yes, no or could-not-tell, why, and what would fix it.
:func:`_conclusive` caches a probe's YES or NO (UNKNOWN is asked again);
:func:`clear_cache` forgets every answer and the parsed kernel config. The parsers read
text the kernel exposes and do no I/O::

    >>> parse_kernel_release("6.18.44-fc-v782")
    (6, 18, 44)
    >>> bool(Feature("btf", FeatureStatus.NO, "no vmlinux BTF"))
    False
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable

import attrs

__all__ = [
    "CAPABILITY_NAMES",
    "Feature",
    "FeatureStatus",
    "clear_cache",
    "parse_capabilities",
    "parse_kconfig",
    "parse_kernel_release",
    "parse_lockdown",
    "parse_lsm_list",
]


class FeatureStatus(enum.Enum):
    """The answer of a probe: YES, NO, or UNKNOWN (could not tell).

    >>> FeatureStatus.YES.value
    'yes'
    """

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@attrs.frozen
class Feature:
    """A probed kernel feature: ``name``, ``status``, the ``reason`` and a ``fix`` (or None).

    ``bool(feature)`` is true only for YES, so ``if features.kprobes(): ...`` reads well.

    >>> f = Feature("btf", FeatureStatus.NO, "no vmlinux BTF", "CONFIG_DEBUG_INFO_BTF=y")
    >>> bool(f), f.known
    (False, True)
    """

    name: str
    status: FeatureStatus
    reason: str
    fix: str | None = None

    def __bool__(self) -> bool:
        return self.status is FeatureStatus.YES

    @property
    def known(self) -> bool:
        """True when the probe was conclusive (YES or NO).

        >>> Feature("x", FeatureStatus.UNKNOWN, "no tracefs").known
        False
        """
        return self.status is not FeatureStatus.UNKNOWN

    def __str__(self) -> str:
        text = f"{self.name}: {self.status.value} ({self.reason})"
        if self.fix and self.status is not FeatureStatus.YES:
            text += f"; fix: {self.fix}"
        return text


# --------------------------------------------------------------------------- caching

_cache: dict[str, Feature] = {}

_config_cache: dict[str, dict[str, str] | None] = {}


def _conclusive(probe: Callable[[], Feature]) -> Callable[[], Feature]:
    """Cache a probe's answer only when it is YES or NO."""

    @functools.wraps(probe)
    def wrapper() -> Feature:
        key = probe.__name__
        hit = _cache.get(key)
        if hit is not None:
            return hit
        result = probe()
        if result.known:
            _cache[key] = result
        return result

    return wrapper


def clear_cache() -> None:
    """Forget every cached probe answer (and the parsed kernel config).

    >>> clear_cache()
    """
    _cache.clear()
    _config_cache.clear()


# --------------------------------------------------------------------------- pure parsers


def parse_kernel_release(release: str) -> tuple[int, int, int]:
    """Parse ``os.uname().release`` (``6.18.44-fc-v782``, ``5.15.0-91-generic``, ``6.1``).

    A missing patch level reads as 0.

    >>> parse_kernel_release("6.18.44-fc-v782")
    (6, 18, 44)
    >>> parse_kernel_release("6.1-rc1")
    (6, 1, 0)

    Raises:
        ValueError: the release does not start with ``MAJOR.MINOR``.
    """
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", release)
    if match is None:
        raise ValueError(
            f"kernel release {release!r} does not start with MAJOR.MINOR[.PATCH] "
            "(expected something like '6.1.0-13-amd64')"
        )
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def parse_kconfig(text: str) -> dict[str, str]:
    """Parse kernel config text (``CONFIG_X=y`` lines; ``# CONFIG_X is not set`` reads as ``n``).

    >>> parse_kconfig("CONFIG_KPROBES=y\\n# CONFIG_FTRACE is not set\\nCONFIG_HZ=250\\n")
    {'CONFIG_KPROBES': 'y', 'CONFIG_FTRACE': 'n', 'CONFIG_HZ': '250'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        unset = re.match(r"^# (CONFIG_\w+) is not set$", line)
        if unset:
            out[unset.group(1)] = "n"
            continue
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


#: Capability numbers to names (include/uapi/linux/capability.h).
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def parse_capabilities(status_text: str, field: str = "CapEff") -> frozenset[str]:
    """Return the capability names set in ``field`` of ``/proc/PID/status`` text.

    Unknown (future) bits are named ``CAP_<number>``.

    >>> sorted(parse_capabilities("CapEff:\\t0000000000201000\\n"))
    ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']

    Raises:
        ValueError: the field is missing or not hexadecimal.
    """
    match = re.search(rf"^{re.escape(field)}:\s*([0-9a-fA-F]+)\s*$", status_text, re.M)
    if match is None:
        raise ValueError(f"no hexadecimal {field!r} line in the status text")
    return _capability_names(int(match.group(1), 16))


def _capability_names(mask: int) -> frozenset[str]:
    names = set()
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            names.add(CAPABILITY_NAMES[bit] if bit < len(CAPABILITY_NAMES) else f"CAP_{bit}")
        bit += 1
    return frozenset(names)


def parse_lockdown(text: str) -> str | None:
    """Return the active lockdown mode (the bracketed word) of securityfs ``lockdown``.

    >>> parse_lockdown("[none] integrity confidentiality\\n")
    'none'
    """
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else None


def parse_lsm_list(text: str) -> list[str]:
    """The active LSMs in ``/sys/kernel/security/lsm`` (or a ``CONFIG_LSM`` value) order.

    >>> parse_lsm_list("lockdown,capability,landlock,bpf")
    ['lockdown', 'capability', 'landlock', 'bpf']
    """
    return [name.strip() for name in text.strip().strip('"').split(",") if name.strip()]


def _v(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))
