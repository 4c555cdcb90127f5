"""Facts of the running system: kernel version and config, capabilities, sysctls, headers.

The version, capabilities and config are read once (the config is cached until
:func:`~ebpfhooks.kernel.features.clear_cache`); the sysctls and files that an
administrator may change while a process runs (``kernel.kptr_restrict``,
``kernel.unprivileged_bpf_disabled``, lockdown, kernel headers) are read on every call::

    from ebpfhooks.kernel import features
    features.kernel_version()           # (6, 18, 44)
    "CAP_BPF" in features.capabilities()
    print(features.kptr_restrict())     # kptr_restrict: yes (addresses visible ...)
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

from ebpfhooks.kernel.features.base import (
    Feature,
    FeatureStatus,
    _capability_names,
    _config_cache,
    parse_capabilities,
    parse_kconfig,
    parse_kernel_release,
    parse_lockdown,
)

__all__ = [
    "capabilities",
    "is_root",
    "kernel_config",
    "kernel_headers",
    "kernel_version",
    "kptr_restrict",
    "lockdown",
    "unprivileged_bpf",
]

CONFIG_GZ = Path("/proc/config.gz")
STATUS_FILE = Path("/proc/self/status")


def kernel_version() -> tuple[int, int, int]:
    """Return the running kernel's ``(major, minor, patch)`` from ``os.uname().release``.

    >>> kernel_version() >= (4, 1, 0)  # doctest: +SKIP
    True
    """
    return parse_kernel_release(os.uname().release)


def is_root() -> bool:
    """True when the effective user id is 0 (capabilities may still be dropped).

    >>> is_root()  # doctest: +SKIP
    True
    """
    return os.geteuid() == 0


def capabilities() -> frozenset[str]:
    """Return the effective capabilities of the calling thread.

    >>> "CAP_BPF" in capabilities()  # doctest: +SKIP
    True

    Asks the kernel with capget(2) (a few microseconds; the calling thread is the one
    that makes the BPF calls); if that cannot be called, reads ``CapEff`` in
    /proc/self/status (~25x slower here).
    Minimum kernel: CAP_BPF and CAP_PERFMON exist since 5.8; before, BPF needs CAP_SYS_ADMIN.
    """
    mask = _capget_effective()
    if mask is not None:
        return _capability_names(mask)
    return parse_capabilities(STATUS_FILE.read_text(encoding="utf-8"))


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_capget: list[Callable[[], int | None]] = []


def _capget_effective() -> int | None:
    """The effective capability mask from capget(2), or None when it cannot be asked."""
    if not _capget:
        _capget.append(_make_capget())
    return _capget[0]()


def _make_capget() -> Callable[[], int | None]:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.capget
    except (OSError, AttributeError):
        return lambda: None

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    def effective() -> int | None:
        header = Header(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (Data * 2)()  # version 3: two 32-bit halves
        if call(ctypes.byref(header), data) != 0:
            return None
        return int(data[0].effective) | int(data[1].effective) << 32

    return effective


def kernel_config() -> dict[str, str] | None:
    """Return the running kernel's build config, or ``None`` if it cannot be read.

    Looks at ``/proc/config.gz`` then ``/boot/config-$(uname -r)``. Cached.

    >>> (kernel_config() or {}).get("CONFIG_BPF")  # doctest: +SKIP
    'y'
    """
    if "config" not in _config_cache:
        parsed: dict[str, str] | None = None
        try:
            with gzip.open(CONFIG_GZ, "rt", encoding="utf-8") as handle:
                parsed = parse_kconfig(handle.read())
        except (OSError, EOFError):
            try:
                boot = Path("/boot") / f"config-{os.uname().release}"
                parsed = parse_kconfig(boot.read_text(encoding="utf-8"))
            except OSError:
                parsed = None
        _config_cache["config"] = parsed
    return _config_cache["config"]


# --------------------------------------------------------------------------- sysctls and files
# Not cached: an administrator changes these while a process runs (doctor --fix, sysctl).

KPTR_RESTRICT = Path("/proc/sys/kernel/kptr_restrict")
UNPRIVILEGED_BPF = Path("/proc/sys/kernel/unprivileged_bpf_disabled")
LOCKDOWN = Path("/sys/kernel/security/lockdown")
KALLSYMS = Path("/proc/kallsyms")
PERF_EVENT_PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def kptr_restrict() -> Feature:
    """Are kernel addresses visible in /proc/kallsyms to this process?

    YES when the first symbol's address reads as non-zero; NO when it reads as zero,
    with ``kernel.kptr_restrict`` and the fix that applies to that value: at 0 the
    kernel shows addresses to CAP_SYSLOG (root) and, when ``kernel.perf_event_paranoid``
    is 1 or less, to every user; at 1 to CAP_SYSLOG only; at 2 to nobody.

    >>> kptr_restrict().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>
    """
    value = _read_int(KPTR_RESTRICT)
    setting = f"kernel.kptr_restrict={value}" if value is not None else "kptr_restrict unknown"
    try:
        with KALLSYMS.open("rb") as handle:
            first = handle.readline()
    except OSError as err:
        return Feature("kptr_restrict", FeatureStatus.UNKNOWN,
                       f"cannot read {KALLSYMS}: {err.strerror}", "run as root")
    if first.split(b" ", 1)[0].strip(b"0") == b"":
        return Feature("kptr_restrict", FeatureStatus.NO,
                       f"{KALLSYMS} shows every address as 0 to this process "
                       f"(uid {os.geteuid()}, {setting})", _kptr_fix(value))
    return Feature("kptr_restrict", FeatureStatus.YES, f"addresses visible ({setting})")


def _kptr_fix(value: int | None) -> str:
    """What shows kallsyms addresses, given ``kernel.kptr_restrict`` (kallsyms_show_value)."""
    if value is None:
        return "run as root (CAP_SYSLOG)"
    if value >= 2:
        return ("sysctl -w kernel.kptr_restrict=1 and run as root (CAP_SYSLOG): at 2 the "
                "kernel hides addresses from everyone")
    if value == 1:
        return "run as root (CAP_SYSLOG): at kernel.kptr_restrict=1 only CAP_SYSLOG sees them"
    paranoid = _read_int(PERF_EVENT_PARANOID)
    if paranoid is None or paranoid <= 1:
        return "run as root (CAP_SYSLOG)"
    return ("run as root (CAP_SYSLOG); kernel.kptr_restrict is already 0: addresses are "
            f"hidden from this process because it lacks CAP_SYSLOG and "
            f"kernel.perf_event_paranoid={paranoid} is above 1")


def unprivileged_bpf() -> Feature:
    """May unprivileged users load BPF programs (``kernel.unprivileged_bpf_disabled``)?

    Matters only without root: ebpfhooks' hook kinds all need privileges anyway
    (CAP_BPF with CAP_PERFMON or CAP_NET_ADMIN), so NO here is normal and harmless.

    >>> unprivileged_bpf().status  # doctest: +SKIP
    <FeatureStatus.NO: 'no'>
    """
    value = _read_int(UNPRIVILEGED_BPF)
    if value is None:
        return Feature("unprivileged_bpf", FeatureStatus.UNKNOWN,
                       f"{UNPRIVILEGED_BPF} is not readable")
    if value == 0:
        return Feature("unprivileged_bpf", FeatureStatus.YES,
                       "kernel.unprivileged_bpf_disabled=0")
    how = "until reboot (1)" if value == 1 else "(2: an admin may set it back to 0)"
    return Feature(
        "unprivileged_bpf", FeatureStatus.NO,
        f"kernel.unprivileged_bpf_disabled={value}: only privileged users load BPF {how}",
        "run as root or grant CAP_BPF (tracing hooks need privileges in any case)"
        + ("; or sysctl -w kernel.unprivileged_bpf_disabled=0" if value == 2 else ""),
    )

def lockdown() -> Feature:
    """Does kernel lockdown leave BPF tracing alone? (``/sys/kernel/security/lockdown``)

    YES for ``none`` (or no lockdown LSM); NO for ``integrity`` (kprobe writes to
    memory are limited) or ``confidentiality`` (reading kernel memory from BPF is
    refused); UNKNOWN when securityfs is not mounted.

    >>> lockdown().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>

    Minimum kernel: 5.4 (lockdown LSM).
    """
    try:
        mode = parse_lockdown(LOCKDOWN.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if LOCKDOWN.parent.is_dir() and any(LOCKDOWN.parent.iterdir()):
            return Feature("lockdown", FeatureStatus.YES,
                           "securityfs is mounted and has no lockdown file (no lockdown LSM)")
        return Feature(
            "lockdown", FeatureStatus.UNKNOWN,
            "securityfs is not mounted, so the lockdown mode cannot be read",
            "mount -t securityfs securityfs /sys/kernel/security",
        )
    except OSError as err:
        return Feature("lockdown", FeatureStatus.UNKNOWN, f"{LOCKDOWN}: {err.strerror}")
    if mode in (None, "none"):
        return Feature("lockdown", FeatureStatus.YES, f"lockdown mode {mode or 'none'}")
    return Feature(
        "lockdown", FeatureStatus.NO,
        f"lockdown mode {mode}: BPF "
        + ("cannot read kernel memory" if mode == "confidentiality"
           else "tracing is restricted"),
        "boot without lockdown (lockdown=none, or disable Secure Boot enforcement)",
    )


def kernel_headers(release: str | None = None) -> Feature:
    """Are kernel headers there for bcc to compile programs against?

    Looks at ``/lib/modules/RELEASE/build`` (``include/`` inside); names the version
    when that is a link to another kernel's headers; falls back to
    ``/sys/kernel/kheaders.tar.xz`` (CONFIG_IKHEADERS).

    >>> kernel_headers().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>
    """
    rel = release or os.uname().release
    build = Path("/lib/modules") / rel / "build"
    fix = f"apt-get install linux-headers-{rel} (or make test, which links the nearest ones)"
    if (build / "include").is_dir() or (build / "Makefile").exists():
        target = os.path.realpath(build)
        if rel not in target:
            return Feature(
                "kernel_headers", FeatureStatus.YES,
                f"{build} -> {target}: headers of another kernel version (programs that read "
                "kernel structs may read wrong offsets)", fix)
        return Feature("kernel_headers", FeatureStatus.YES, f"{build} -> {target}")
    if Path("/sys/kernel/kheaders.tar.xz").exists():
        return Feature("kernel_headers", FeatureStatus.YES,
                       "/sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)")
    return Feature("kernel_headers", FeatureStatus.NO, f"{build} is missing", fix
                   + "; or modprobe kheaders")
