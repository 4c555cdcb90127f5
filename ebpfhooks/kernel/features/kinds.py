"""Probes of the kinds bcc attaches: kprobes, uprobes, raw tracepoints, BTF, XDP, bpf_link.

Each looks at files the kernel exposes (PMUs under ``/sys/bus/event_source/devices``,
tracefs, kallsyms, ``/proc/config.gz``, the release string) and returns a
:class:`~ebpfhooks.kernel.features.Feature` saying why; conclusive answers are cached.
:func:`features` runs them all (``ebpfhooks doctor`` shows them)::

    from ebpfhooks.kernel import features
    f = features.kprobes()
    if not f:
        print(f.reason, f.fix)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ebpfhooks.errors import EbpfHooksError
from ebpfhooks.kernel.features.base import Feature, FeatureStatus, _conclusive, _v
from ebpfhooks.kernel.features.system import kernel_config, kernel_version

__all__ = ["bpf_link", "btf", "features", "kprobes", "raw_tracepoints", "uprobes", "xdp"]

PMU_DIR = Path("/sys/bus/event_source/devices")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")


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
