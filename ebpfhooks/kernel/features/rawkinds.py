"""Probes of what ebpfhooks.bpfsys attaches without bcc.

uprobe_multi links, BPF trampolines (fentry/fexit/LSM), the BPF LSM, perf-event PMUs and
``BPF_PERF_EVENT`` links. Those that must ask the kernel load a two-instruction program
("r0 = 0; exit") and make a request the kernel answers differently when it knows the
feature; without the privileges to load it they answer UNKNOWN (not cached)::

    from ebpfhooks.kernel import features
    if features.uprobe_multi():
        link = bpfsys.uprobe_multi(prog, path, offsets)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ebpfhooks.errors import EbpfHooksError
from ebpfhooks.kernel.features.base import (
    Feature,
    FeatureStatus,
    _conclusive,
    _v,
    parse_lsm_list,
)
from ebpfhooks.kernel.features.kinds import BTF_VMLINUX, PMU_DIR
from ebpfhooks.kernel.features.system import capabilities, kernel_config, kernel_version

__all__ = ["bpf_lsm", "perf_hardware", "perf_link", "perf_software", "trampolines",
           "uprobe_multi"]

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
