"""Feature probes: can this kernel do X? Answers are yes, no or could-not-tell.

Probing is kept apart from attaching: each probe looks at files the kernel exposes
(PMUs under ``/sys/bus/event_source/devices``, tracefs, kallsyms, ``/proc/config.gz``,
the release string) and returns a :class:`Feature` saying why. Conclusive answers (YES
or NO) are cached; UNKNOWN is asked again next time. :func:`clear_cache` forgets all::

    from ebpfhooks.kernel import features
    f = features.kprobes()
    if not f:
        print(f.reason, f.fix)

Nothing here loads a BPF program or imports bcc.
"""

from __future__ import annotations

import enum
import functools
import gzip
import os
import re
from collections.abc import Callable
from pathlib import Path

import attrs

from ebpfhooks.errors import EbpfHooksError

__all__ = [
    "CAPABILITY_NAMES",
    "Feature",
    "FeatureStatus",
    "bpf_link",
    "btf",
    "capabilities",
    "clear_cache",
    "features",
    "is_root",
    "kernel_config",
    "kernel_headers",
    "kernel_version",
    "kprobes",
    "kptr_restrict",
    "lockdown",
    "parse_capabilities",
    "parse_kconfig",
    "parse_kernel_release",
    "raw_tracepoints",
    "unprivileged_bpf",
    "uprobes",
    "xdp",
]
# probes for the raw-syscall kinds (ebpfhooks.bpfsys); not in features() yet
__all__ += ["bpf_lsm", "parse_lsm_list", "perf_hardware", "perf_link", "perf_software",
            "trampolines", "uprobe_multi"]

PMU_DIR = Path("/sys/bus/event_source/devices")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")
CONFIG_GZ = Path("/proc/config.gz")
STATUS_FILE = Path("/proc/self/status")


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


# --------------------------------------------------------------------------- readers


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


_config_cache: dict[str, dict[str, str] | None] = {}


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


def _tracefs_file(name: str) -> tuple[bool | None, str, str | None]:
    """Does ``<tracefs>/name`` exist? ``(answer, what was seen, why not looked)``.

    The answer is ``None`` when it could not be looked at: tracefs not mounted, or
    mounted but not readable by this process (tracefs is root's, mode 0700).
    """
    from ebpfhooks.errors import HookPermissionError
    from ebpfhooks.kernel import mounts

    try:
        root = mounts.tracefs_root()
    except HookPermissionError:
        where = mounts.mounted_tracefs() or "tracefs"
        why = f"{where} is readable by root only"
        return None, f"{name} not checked ({why})", why
    except (EbpfHooksError, OSError):
        why = "tracefs is not mounted"
        return None, f"{name} not checked ({why})", why
    path = root / name
    exists = path.exists()
    return exists, str(path) if exists else f"no {path}", None


def _probe_event_kind(
    feature: str, pmu: str, events_file: str, config_key: str, alternative: str
) -> Feature:
    """Shared logic of :func:`kprobes` and :func:`uprobes`."""
    pmu_path = PMU_DIR / pmu
    if pmu_path.exists():
        return Feature(feature, FeatureStatus.YES, f"{pmu_path} exists")
    in_tracefs, seen, why_not = _tracefs_file(events_file)
    if in_tracefs:
        return Feature(feature, FeatureStatus.YES, f"{seen} exists")
    fix = (
        f"boot a kernel built with {config_key}=y; {alternative}"
        if alternative
        else f"boot a kernel built with {config_key}=y"
    )
    config = kernel_config()
    config_note = ""
    if config is not None:
        value = config.get(config_key, "n")
        if value == "y":
            # Built in but neither interface is visible: tracefs not mounted, old kernel.
            return Feature(
                feature,
                FeatureStatus.YES,
                f"{config_key}=y in the kernel config ({pmu_path} missing, {seen})",
            )
        config_note = f", and {config_key} is not set in /proc/config.gz"
    base = f"no {pmu} PMU in {PMU_DIR}, {seen}"
    if in_tracefs is False or config is not None or kernel_version() >= (4, 17, 0):
        # tracefs looked at, or the config says so, or the PMU (4.17+) would be there
        return Feature(feature, FeatureStatus.NO, f"{base}{config_note}", fix)
    if why_not == "tracefs is not mounted":
        return Feature(feature, FeatureStatus.UNKNOWN, base,
                       "mount tracefs: mount -t tracefs tracefs /sys/kernel/tracing")
    return Feature(feature, FeatureStatus.UNKNOWN, base,
                   "run as root (e.g. sudo ebpfhooks doctor) to let it look")


@_conclusive
def kprobes() -> Feature:
    """Can kprobes/kretprobes be created? (``kprobe`` PMU or ``<tracefs>/kprobe_events``).

    NO names both places and ``CONFIG_KPROBES`` (checked in /proc/config.gz when readable).

    >>> kprobes().status  # doctest: +SKIP
    <FeatureStatus.NO: 'no'>

    Minimum kernel: 4.17 for the ``kprobe`` PMU; tracefs ``kprobe_events`` before that.
    """
    return _probe_event_kind(
        "kprobes",
        "kprobe",
        "kprobe_events",
        "CONFIG_KPROBES",
        "hook a tracepoint or raw_tracepoint instead (e.g. tracepoint:syscalls:sys_enter_*)",
    )


@_conclusive
def uprobes() -> Feature:
    """Can uprobes/uretprobes be created? (``uprobe`` PMU or ``<tracefs>/uprobe_events``).

    >>> bool(uprobes())  # doctest: +SKIP
    True

    Minimum kernel: 4.17 for the ``uprobe`` PMU; tracefs ``uprobe_events`` since 3.5.
    """
    return _probe_event_kind("uprobes", "uprobe", "uprobe_events", "CONFIG_UPROBE_EVENTS", "")


def _has_symbol(*names: str) -> tuple[bool | None, str]:
    """Is any of ``names`` in kallsyms? ``None`` when kallsyms cannot be read."""
    from ebpfhooks.kernel.kallsyms import index

    try:
        table = index()
    except (EbpfHooksError, OSError):
        return None, "/proc/kallsyms is not readable"
    for name in names:
        if name in table:
            return True, f"{name} is in /proc/kallsyms"
    return False, f"none of {', '.join(names)} is in /proc/kallsyms"


@_conclusive
def raw_tracepoints() -> Feature:
    """Can BPF attach to raw tracepoints (``BPF_RAW_TRACEPOINT_OPEN``)?

    YES for kernel 4.17+ or when kallsyms has ``bpf_get_raw_tracepoint`` /
    ``bpf_find_raw_tracepoint``.

    >>> bool(raw_tracepoints())  # doctest: +SKIP
    True

    Minimum kernel: 4.17.
    """
    version = kernel_version()
    if version >= (4, 17, 0):
        return Feature("raw_tracepoints", FeatureStatus.YES, f"kernel {_v(version)} >= 4.17")
    found, why = _has_symbol("bpf_get_raw_tracepoint", "bpf_find_raw_tracepoint")
    if found:
        return Feature("raw_tracepoints", FeatureStatus.YES, why)
    fix = "use a kernel >= 4.17, or hook the tracepoint with tracepoint:CAT:EVENT"
    if found is None:
        return Feature("raw_tracepoints", FeatureStatus.UNKNOWN, f"kernel {_v(version)}; {why}",
                       fix)
    return Feature("raw_tracepoints", FeatureStatus.NO, f"kernel {_v(version)} < 4.17; {why}",
                   fix)


@_conclusive
def btf() -> Feature:
    """Does the kernel expose its BTF type information (``/sys/kernel/btf/vmlinux``)?

    >>> bool(btf())  # doctest: +SKIP
    True

    Minimum kernel: 5.5 for ``/sys/kernel/btf/vmlinux`` (with CONFIG_DEBUG_INFO_BTF).
    """
    if BTF_VMLINUX.exists():
        return Feature("btf", FeatureStatus.YES, f"{BTF_VMLINUX} exists")
    return Feature(
        "btf",
        FeatureStatus.NO,
        f"{BTF_VMLINUX} does not exist",
        "boot a kernel >= 5.5 built with CONFIG_DEBUG_INFO_BTF=y",
    )


@_conclusive
def xdp() -> Feature:
    """Can XDP programs be attached (at least in generic/SKB mode)?

    YES when the kernel is 4.8+ and kallsyms has ``bpf_prog_run_generic_xdp`` or
    ``do_xdp_generic`` (generic XDP, 4.12+).

    >>> bool(xdp())  # doctest: +SKIP
    True

    Minimum kernel: 4.8 (driver mode), 4.12 (generic mode, any interface).
    """
    version = kernel_version()
    fix = "use a kernel >= 4.12 (generic XDP works on every interface)"
    if version < (4, 8, 0):
        return Feature("xdp", FeatureStatus.NO, f"kernel {_v(version)} < 4.8", fix)
    found, why = _has_symbol("bpf_prog_run_generic_xdp", "do_xdp_generic")
    if found:
        return Feature("xdp", FeatureStatus.YES, f"kernel {_v(version)} >= 4.8 and {why}")
    if found is None:
        return Feature("xdp", FeatureStatus.UNKNOWN, why, "run as root to read /proc/kallsyms")
    return Feature("xdp", FeatureStatus.NO, why, fix)


@_conclusive
def bpf_link() -> Feature:
    """Can XDP be attached through a ``bpf_link`` (detached when its last fd closes)?

    Version based: ``BPF_LINK_CREATE`` appeared in 5.7, but its XDP attach type only
    in 5.9, so this answers YES from 5.9 on (older kernels fall back to netlink, which
    leaves the program attached after exit).

    >>> bool(bpf_link())  # doctest: +SKIP
    True

    Minimum kernel: 5.9 (XDP bpf_link); 5.7 for bpf_link in general.
    """
    version = kernel_version()
    if version >= (5, 9, 0):
        return Feature("bpf_link", FeatureStatus.YES, f"kernel {_v(version)} >= 5.9")
    return Feature(
        "bpf_link",
        FeatureStatus.NO,
        f"kernel {_v(version)} < 5.9 (XDP bpf_link)",
        "use a kernel >= 5.9; until then XDP is attached by netlink and must be "
        "removed explicitly",
    )


def _v(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


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


def parse_lockdown(text: str) -> str | None:
    """Return the active lockdown mode (the bracketed word) of securityfs ``lockdown``.

    >>> parse_lockdown("[none] integrity confidentiality\\n")
    'none'
    """
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else None


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


_PROBES: dict[str, Callable[[], Feature]] = {
    "kprobes": kprobes,
    "uprobes": uprobes,
    "raw_tracepoints": raw_tracepoints,
    "btf": btf,
    "xdp": xdp,
    "bpf_link": bpf_link,
}


def features() -> dict[str, Feature]:
    """Run every probe and return ``{name: Feature}`` (kprobes, uprobes, raw_tracepoints...).

    >>> {name: str(f.status.value) for name, f in features().items()}  # doctest: +SKIP
    {'kprobes': 'no', 'uprobes': 'yes', 'raw_tracepoints': 'yes', 'btf': 'yes', ...}
    """
    return {name: probe() for name, probe in _PROBES.items()}


# --------------------------------------------------------------------------- raw-syscall kinds
# Probes for what ebpfhooks.bpfsys attaches without bcc: uprobe_multi links, BPF
# trampolines (fentry/fexit/LSM), BPF LSM, perf-event PMUs and BPF_PERF_EVENT links.
# Those that must ask the kernel load a two-instruction program ("r0 = 0; exit") and make
# a request the kernel answers differently when it knows the feature; without the
# privileges to load it they answer UNKNOWN (not cached).

LSM_FILE = Path("/sys/kernel/security/lsm")
CMDLINE = Path("/proc/cmdline")
#: ``r0 = 0; exit``: the smallest valid BPF program.
_NOP_INSNS = bytes.fromhex("b700000000000000" "9500000000000000")


def _may_load_bpf() -> str | None:
    """None when this process may load tracing programs, else the capability it lacks."""
    try:
        have = capabilities()
    except (OSError, ValueError):
        return "CAP_BPF"
    if "CAP_SYS_ADMIN" in have or {"CAP_BPF", "CAP_PERFMON"} <= have:
        return None
    return "CAP_BPF" if "CAP_BPF" not in have else "CAP_PERFMON"


def _load_nop(prog_type: int, expected_attach_type: int = 0,
              attach_btf_id: int = 0) -> tuple[int | None, EbpfHooksError | None]:
    """Load the nop program: (fd, None), or (None, the typed error of the load)."""
    from ebpfhooks import bpfsys

    try:
        return bpfsys.prog_load(prog_type, _NOP_INSNS, name="ehk_probe",
                                expected_attach_type=expected_attach_type,
                                attach_btf_id=attach_btf_id, what="probing the kernel"), None
    except EbpfHooksError as err:
        return None, err


def _errno_name(code: int) -> str:
    import errno

    return errno.errorcode.get(code, str(code))


@_conclusive
def uprobe_multi() -> Feature:
    """Can many uprobes be made by one ``BPF_LINK_CREATE`` (uprobe_multi link)?

    Asks the kernel: loads a nop KPROBE program with expected attach type
    ``BPF_TRACE_UPROBE_MULTI`` and requests a uprobe_multi link on ``/`` (a directory).
    A kernel with uprobe_multi refuses that with EBADF (not a regular file: it read the
    request); one without refuses it with EINVAL (unknown attach type or ``bpf_attr``
    fields) or EOPNOTSUPP (built without uprobes): YES / NO. Without the privileges to
    load the program: UNKNOWN, naming what the kernel version suggests.

    >>> uprobe_multi().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>

    Minimum kernel: 6.6.
    """
    import ctypes
    import errno

    from ebpfhooks import bpfsys

    version = kernel_version()
    fix = ("use a kernel >= 6.6 built with CONFIG_UPROBES=y; until then uprobes are "
           "attached one perf event each (slower to attach and detach, same events)")
    lacking = _may_load_bpf()
    if lacking is not None:
        hint = ">= 6.6 suggests yes" if version >= (6, 6, 0) else "< 6.6 suggests no"
        return Feature("uprobe_multi", FeatureStatus.UNKNOWN,
                       f"probing needs {lacking} (kernel {_v(version)} {hint})",
                       "run as root")
    fd, err = _load_nop(bpfsys.BPF_PROG_TYPE_KPROBE, bpfsys.BPF_TRACE_UPROBE_MULTI)
    if fd is None:
        return Feature("uprobe_multi", FeatureStatus.UNKNOWN,
                       f"could not load a KPROBE program to probe with: {err}", fix)
    try:
        root = ctypes.create_string_buffer(b"/")
        offset = (ctypes.c_uint64 * 1)(0)
        attr = bpfsys.LinkCreateAttr(prog_fd=fd, target_fd=0,
                                     attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI)
        attr.u.uprobe_multi.path = ctypes.addressof(root)
        attr.u.uprobe_multi.offsets = ctypes.addressof(offset)
        attr.u.uprobe_multi.cnt = 1
        ret = bpfsys.bpf._sys_bpf(bpfsys.BPF_LINK_CREATE, attr)
    finally:
        os.close(fd)
    if ret >= 0:  # cannot happen for a directory; be safe
        os.close(ret)
        return Feature("uprobe_multi", FeatureStatus.YES,
                       f"kernel {_v(version)} made a uprobe_multi link")
    code = -ret
    if code == errno.EBADF:
        return Feature("uprobe_multi", FeatureStatus.YES,
                       f"kernel {_v(version)} reads uprobe_multi link requests (EBADF for a "
                       "directory)")
    if code in (errno.EINVAL, errno.EOPNOTSUPP, bpfsys.ENOTSUPP):
        why = ("built without CONFIG_UPROBES" if code != errno.EINVAL
               else "BPF_LINK_CREATE does not know BPF_TRACE_UPROBE_MULTI")
        return Feature("uprobe_multi", FeatureStatus.NO,
                       f"kernel {_v(version)}: {why} ({_errno_name(code)})", fix)
    return Feature("uprobe_multi", FeatureStatus.UNKNOWN,
                   f"kernel {_v(version)} answered the probe with {_errno_name(code)}", fix)


#: Functions a trampoline probe may attach a nop fentry program to, in order.
_TRAMPOLINE_TARGETS = ("bpf_fentry_test1", "do_sys_openat2", "vfs_read")


@_conclusive
def trampolines() -> Feature:
    """Can BPF trampolines be attached (fentry/fexit/fmod_ret, and LSM programs)?

    Asks the kernel: loads a nop TRACING program with expected attach type
    ``BPF_TRACE_FENTRY`` on a kernel function (``bpf_fentry_test1``, which only BPF's
    test runs call, else ``do_sys_openat2``) and attaches it for a moment. Loaded and
    attached: YES; refused while privileged (EPERM, ENOTSUPP ... the kernel cannot make
    the trampoline): NO; not privileged: UNKNOWN. No BTF or kernel < 5.5: NO.

    >>> trampolines().status  # doctest: +SKIP
    <FeatureStatus.NO: 'no'>

    Minimum kernel: 5.5 (x86_64; arm64 6.0), with CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS.
    """
    from ebpfhooks import bpfsys
    from ebpfhooks.errors import NotSupportedError
    from ebpfhooks.kernel.btf import FUNC, vmlinux_btf

    version = kernel_version()
    fix = ("use kprobes or tracepoints instead, or a kernel >= 5.5 built with "
           "CONFIG_FUNCTION_TRACER and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")
    if version < (5, 5, 0):
        return Feature("trampolines", FeatureStatus.NO, f"kernel {_v(version)} < 5.5", fix)
    try:
        vmlinux = vmlinux_btf()
    except EbpfHooksError as err:
        return Feature("trampolines", FeatureStatus.UNKNOWN, f"vmlinux BTF: {err}", fix)
    if vmlinux is None:
        return Feature("trampolines", FeatureStatus.NO,
                       f"no {BTF_VMLINUX}: fentry programs name their target by BTF id",
                       "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    target = next(((n, t) for n in _TRAMPOLINE_TARGETS
                   if (t := vmlinux.type_id(n, FUNC)) is not None), None)
    if target is None:
        return Feature("trampolines", FeatureStatus.UNKNOWN,
                       f"none of {', '.join(_TRAMPOLINE_TARGETS)} is a FUNC in vmlinux BTF",
                       fix)
    lacking = _may_load_bpf()
    if lacking is not None:
        return Feature("trampolines", FeatureStatus.UNKNOWN,
                       f"probing needs {lacking}", "run as root")
    name, type_id = target
    fd, load_err = _load_nop(bpfsys.BPF_PROG_TYPE_TRACING, bpfsys.BPF_TRACE_FENTRY, type_id)
    if fd is None:
        status = (FeatureStatus.NO if isinstance(load_err, NotSupportedError)
                  else FeatureStatus.UNKNOWN)
        first = str(load_err).splitlines()[0]
        return Feature("trampolines", status,
                       f"kernel {_v(version)} refused a fentry program on {name}: {first}", fix)
    try:
        link = bpfsys.raw_tracepoint_open(fd, None, what=f"probing fentry on {name}")
    except NotSupportedError as err2:
        return Feature("trampolines", FeatureStatus.NO,
                       f"kernel {_v(version)} loaded but could not attach a fentry program "
                       f"on {name}: {str(err2).splitlines()[0]}", fix)
    except EbpfHooksError as err2:
        return Feature("trampolines", FeatureStatus.UNKNOWN,
                       f"attaching a fentry program on {name}: {err2}", fix)
    finally:
        os.close(fd)
    os.close(link)
    return Feature("trampolines", FeatureStatus.YES,
                   f"kernel {_v(version)} attached a fentry program on {name}")


def parse_lsm_list(text: str) -> list[str]:
    """The active LSMs in ``/sys/kernel/security/lsm`` (or a ``CONFIG_LSM`` value) order.

    >>> parse_lsm_list("lockdown,capability,landlock,bpf")
    ['lockdown', 'capability', 'landlock', 'bpf']
    """
    return [name.strip() for name in text.strip().strip('"').split(",") if name.strip()]


@_conclusive
def bpf_lsm() -> Feature:
    """Is the BPF LSM active (can LSM programs run at all)?

    YES when ``/sys/kernel/security/lsm`` lists ``bpf``. Where securityfs is not mounted,
    from the build config: ``CONFIG_BPF_LSM`` and the ``lsm=`` boot parameter, else the
    ``CONFIG_LSM`` default order. Attaching an LSM program also needs BPF trampolines
    (:func:`trampolines`).

    >>> bpf_lsm().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>

    Minimum kernel: 5.7 (CONFIG_BPF_LSM=y and ``bpf`` in the LSM order).
    """
    fix = ("boot a kernel built with CONFIG_BPF_LSM=y and 'bpf' in its LSM order (add it "
           "with the boot parameter lsm=...,bpf)")
    try:
        active = parse_lsm_list(LSM_FILE.read_text(encoding="ascii"))
    except OSError:
        active = None
    if active is not None:
        if "bpf" in active:
            return Feature("bpf_lsm", FeatureStatus.YES, f"{LSM_FILE}: {','.join(active)}")
        return Feature("bpf_lsm", FeatureStatus.NO,
                       f"{LSM_FILE} does not list bpf ({','.join(active)})", fix)
    config = kernel_config()
    if kernel_version() < (5, 7, 0):
        return Feature("bpf_lsm", FeatureStatus.NO, f"kernel {_v(kernel_version())} < 5.7", fix)
    if config is None:
        return Feature("bpf_lsm", FeatureStatus.UNKNOWN,
                       f"{LSM_FILE} is not readable (securityfs not mounted) and the kernel "
                       "config cannot be read",
                       "mount -t securityfs securityfs /sys/kernel/security")
    if config.get("CONFIG_BPF_LSM", "n") != "y":
        return Feature("bpf_lsm", FeatureStatus.NO, "CONFIG_BPF_LSM is not set", fix)
    try:
        cmdline = CMDLINE.read_text(encoding="utf-8", errors="replace")
    except OSError:
        cmdline = ""
    boot = re.search(r"(?:^|\s)lsm=(\S*)", cmdline.split(" -- ")[0])
    order = parse_lsm_list(boot.group(1) if boot else config.get("CONFIG_LSM", ""))
    source = "the lsm= boot parameter" if boot else "CONFIG_LSM"
    if "bpf" in order:
        return Feature("bpf_lsm", FeatureStatus.YES,
                       f"CONFIG_BPF_LSM=y and {source} lists bpf (securityfs not mounted)")
    return Feature("bpf_lsm", FeatureStatus.NO,
                   f"CONFIG_BPF_LSM=y but {source} does not list bpf "
                   f"({','.join(order) or 'empty'})", fix)


#: Directory names of CPU (hardware-event) PMUs: x86, hybrid x86, arm64, others.
_CPU_PMU = re.compile(r"^(cpu|cpu_core|cpu_atom|armv\d.*|arm_cortex.*|cpum_cf)$")


def _pmus() -> list[str]:
    try:
        return sorted(p.name for p in PMU_DIR.iterdir())
    except OSError:
        return []


@_conclusive
def perf_software() -> Feature:
    """Are software perf events there (``software`` PMU: cpu-clock, page-faults ...)?

    >>> bool(perf_software())  # doctest: +SKIP
    True

    Minimum kernel: 2.6.31 (CONFIG_PERF_EVENTS); BPF on perf events 4.9.
    """
    if (PMU_DIR / "software").exists():
        return Feature("perf_software", FeatureStatus.YES, f"{PMU_DIR / 'software'} exists")
    config = kernel_config()
    if config is not None and config.get("CONFIG_PERF_EVENTS", "n") != "y":
        return Feature("perf_software", FeatureStatus.NO, "CONFIG_PERF_EVENTS is not set",
                       "boot a kernel built with CONFIG_PERF_EVENTS=y")
    if PMU_DIR.is_dir():
        return Feature("perf_software", FeatureStatus.NO,
                       f"no software PMU in {PMU_DIR} ({', '.join(_pmus()) or 'empty'})",
                       "boot a kernel built with CONFIG_PERF_EVENTS=y")
    return Feature("perf_software", FeatureStatus.UNKNOWN, f"{PMU_DIR} is not readable")


def _open_cycles() -> int:
    """perf_event_open a disabled user-space CPU-cycles counter on this thread: 0 or -errno."""
    import ctypes

    from ebpfhooks import bpfsys

    attr = bpfsys.PerfEventAttr(type=0, size=ctypes.sizeof(bpfsys.PerfEventAttr), config=0,
                                flags=0b1 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, _hv
    fd = bpfsys.perf._perf_event_open(attr, 0, -1)
    if fd >= 0:
        os.close(fd)
        return 0
    return fd


@_conclusive
def perf_hardware() -> Feature:
    """Are hardware perf events there (a CPU PMU: cycles, instructions ...)?

    Asks the kernel: opens a disabled CPU-cycles counter for this thread (user space
    only) and closes it. Opened: YES; ENOENT/EOPNOTSUPP/ENODEV (no hardware PMU, as in
    most virtual machines): NO, listing the PMUs there are; refused (perf_event_paranoid):
    UNKNOWN, from the PMU directory names.

    >>> perf_hardware().status  # doctest: +SKIP
    <FeatureStatus.NO: 'no'>

    Minimum kernel: 2.6.31, and a CPU PMU the kernel (or hypervisor) exposes.
    """
    import errno

    pmus = _pmus()
    cpu = [p for p in pmus if _CPU_PMU.match(p)]
    fix = ("use software events (software:cpu-clock, profile:hz:N) instead; hardware events "
           "need a CPU PMU (on a VM: enable the virtual PMU, e.g. qemu -cpu host)")
    listed = ", ".join(pmus) or "none"
    code = -_open_cycles()
    if code == 0:
        return Feature("perf_hardware", FeatureStatus.YES,
                       f"a CPU-cycles counter opened (PMUs: {listed})")
    if code in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
        return Feature("perf_hardware", FeatureStatus.NO,
                       f"no hardware PMU: a CPU-cycles counter gives {_errno_name(code)} "
                       f"(PMUs in {PMU_DIR}: {listed})", fix)
    status = FeatureStatus.UNKNOWN
    return Feature("perf_hardware", status,
                   f"a CPU-cycles counter gives {_errno_name(code)}; CPU PMU directories: "
                   f"{', '.join(cpu) or 'none'} (of {listed})",
                   "run as root, or lower kernel.perf_event_paranoid")


@_conclusive
def perf_link() -> Feature:
    """Can a BPF program be put on a perf event as a bpf_link (``BPF_PERF_EVENT``)?

    That is what gives a per-probe uprobe, kprobe or tracepoint a BPF cookie
    (``bpf_get_attach_cookie``). Asks the kernel: loads a nop KPROBE program and requests
    a ``BPF_PERF_EVENT`` link on fd -1: EBADF (it looked for the perf event) is YES,
    EINVAL (unknown attach type) NO; not privileged: UNKNOWN.

    >>> perf_link().status  # doctest: +SKIP
    <FeatureStatus.YES: 'yes'>

    Minimum kernel: 5.15.
    """
    import errno

    from ebpfhooks import bpfsys

    version = kernel_version()
    fix = "use a kernel >= 5.15 for BPF cookies on perf events; attach without a cookie"
    lacking = _may_load_bpf()
    if lacking is not None:
        return Feature("perf_link", FeatureStatus.UNKNOWN, f"probing needs {lacking}",
                       "run as root")
    fd, err = _load_nop(bpfsys.BPF_PROG_TYPE_KPROBE)
    if fd is None:
        return Feature("perf_link", FeatureStatus.UNKNOWN,
                       f"could not load a KPROBE program to probe with: {err}", fix)
    try:
        attr = bpfsys.LinkCreateAttr(prog_fd=fd, target_fd=0xFFFFFFFF,
                                     attach_type=bpfsys.BPF_PERF_EVENT)
        ret = bpfsys.bpf._sys_bpf(bpfsys.BPF_LINK_CREATE, attr)
    finally:
        os.close(fd)
    if ret >= 0:
        os.close(ret)
    code = -ret if ret < 0 else 0
    if code == errno.EBADF:
        return Feature("perf_link", FeatureStatus.YES,
                       f"kernel {_v(version)} reads BPF_PERF_EVENT link requests")
    if code == errno.EINVAL:
        return Feature("perf_link", FeatureStatus.NO,
                       f"kernel {_v(version)}: BPF_LINK_CREATE does not know BPF_PERF_EVENT",
                       fix)
    return Feature("perf_link", FeatureStatus.UNKNOWN,
                   f"kernel {_v(version)} answered the probe with {_errno_name(code)}", fix)
