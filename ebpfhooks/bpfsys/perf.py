"""perf_event_open(2): the ``uprobe`` PMU, and software and hardware events.

:func:`perf_uprobe` makes one uprobe as a perf event of the ``uprobe`` PMU (with a USDT
semaphore offset and, through a ``BPF_PERF_EVENT`` link, a BPF cookie) and returns a
:class:`PerfUprobe` owning its fds; :func:`uprobe_opener` is the same call in the shape
ebpfhooks' bcc adapter uses::

    from ebpfhooks import bpfsys
    with bpfsys.perf_uprobe(prog, "/usr/bin/bash", 0x8d6e0, cookie=7):
        ...

:func:`perf_event_open` opens one sampling event of any PMU (software events such as
cpu-clock and page-faults, hardware counters); :func:`perf_event_attach` puts a
``PERF_EVENT`` program on one such event per CPU (or one following a process) and
returns a :class:`PerfEvents` owning every fd::

    with bpfsys.perf_event_attach(prog, bpfsys.PERF_TYPE_SOFTWARE, 0, sample_freq=99):
        ...   # the program runs 99 times a second on every CPU

``_perf_event_open`` and ``_ioctl`` are the paths to the syscalls: tests replace them.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ebpfhooks.bpfsys._attr import BPF_PERF_EVENT, BPF_PROG_TYPE_PERF_EVENT, PerfEventAttr
from ebpfhooks.bpfsys.bpf import (
    CAPS_TRACING,
    _libc,
    _link_error,
    _missing_caps,
    _permission,
    _strerror,
    link_create,
)
from ebpfhooks.errors import (
    AttachError,
    BinaryNotFoundError,
    NotSupportedError,
    ProcessNotFoundError,
    SpecError,
)

__all__ = ["PERF_TYPE_HARDWARE", "PERF_TYPE_SOFTWARE", "PerfEvents", "PerfUprobe",
           "perf_event_attach", "perf_event_open", "perf_uprobe", "uprobe_opener"]

#: perf_event_open(2) numbers, on the machines whose ioctl numbers are asm-generic's.
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "s390x": 331}

_PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
_PERF_EVENT_IOC_DISABLE = 0x2401  # _IO('$', 1)
_PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
_PERF_FLAG_FD_CLOEXEC = 8

_U64_MAX = (1 << 64) - 1


def _regular_file(path: str | os.PathLike[str], what: str) -> bytes:
    raw = os.fsencode(path)
    if not raw or b"\0" in raw:
        raise SpecError(f"{what}: path {raw!r} must be non-empty without NUL bytes")
    p = Path(os.fsdecode(raw))
    if not p.exists():
        raise BinaryNotFoundError(str(p), where="the file system",
                                  hint="give the path of the ELF file to probe")
    if not p.is_file():
        raise BinaryNotFoundError(str(p), where="the file system",
                                  hint=f"{p} is not a regular file: uprobes need an ELF file")
    return raw


class _UprobePmu:
    """The ``uprobe`` PMU as sysfs describes it, read once."""

    def __init__(self, pmu_type: int, ret_bit: int, ref_ctr_shift: int | None) -> None:
        self.type = pmu_type
        self.ret_bit = ret_bit
        self.ref_ctr_shift = ref_ctr_shift  # None: the kernel has no ref_ctr_offset (< 4.20)


_PMU: list[_UprobePmu | None] = []


def _config_field(text: str) -> tuple[str, int, int] | None:
    """``config:32-63`` -> ("config", 32, 63); ``config:0`` -> ("config", 0, 0)."""
    m = re.fullmatch(r"\s*(config\d?):(\d+)(?:-(\d+))?\s*", text)
    if m is None:
        return None
    lo = int(m.group(2))
    return m.group(1), lo, int(m.group(3) or lo)


def _uprobe_pmu() -> _UprobePmu | None:
    """The uprobe PMU (type, retprobe bit, ref_ctr_offset shift), or None without one."""
    if _PMU:
        return _PMU[0]
    from ebpfhooks.kernel.features import PMU_DIR

    pmu_dir = PMU_DIR / "uprobe"
    found: _UprobePmu | None = None
    try:
        pmu_type = int((pmu_dir / "type").read_text(encoding="ascii").strip())
        ret = _config_field((pmu_dir / "format" / "retprobe").read_text(encoding="ascii"))
    except (OSError, ValueError):
        ret = None
        pmu_type = -1
    if ret is not None and ret[0] == "config" and 0 <= ret[1] < 64:
        shift = None
        try:
            ref = _config_field((pmu_dir / "format" / "ref_ctr_offset").read_text(
                encoding="ascii"))
            if ref is not None and ref[0] == "config" and ref[2] == 63:
                shift = ref[1]
        except OSError:
            pass
        found = _UprobePmu(pmu_type, ret[1], shift)
    _PMU.append(found)
    return found


def _perf_event_open(attr: PerfEventAttr, pid: int, cpu: int) -> int:
    """perf_event_open(2): the fd or ``-errno``. Tests replace this function."""
    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        return -_errno.ENOSYS
    ctypes.set_errno(0)
    fd = int(_libc().syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_int(pid),
                             ctypes.c_int(cpu), ctypes.c_int(-1),
                             ctypes.c_ulong(_PERF_FLAG_FD_CLOEXEC)))
    return fd if fd >= 0 else -(ctypes.get_errno() or _errno.EINVAL)


def _ioctl(fd: int, request: int, arg: int) -> int:
    ctypes.set_errno(0)
    ret = int(_libc().ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), ctypes.c_int(arg)))
    return 0 if ret == 0 else -(ctypes.get_errno() or _errno.EINVAL)


def _uprobe_attr(pmu: _UprobePmu, ret: bool, path: ctypes.Array[ctypes.c_char],
                 file_offset: int, ref_ctr_offset: int) -> PerfEventAttr:
    config = (1 << pmu.ret_bit) if ret else 0
    if ref_ctr_offset:
        assert pmu.ref_ctr_shift is not None
        config |= ref_ctr_offset << pmu.ref_ctr_shift
    return PerfEventAttr(type=pmu.type, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period=1, wakeup_events=1, config1=ctypes.addressof(path),
                         config2=file_offset)


_OPENER: list[Callable[..., int] | None] = []


def uprobe_opener() -> Callable[..., int] | None:
    """``open(prog_fd, ret, path, file_offset, pid, ref_ctr_offset=0) -> perf fd or -1``.

    The perf_event_open(2) + ``PERF_EVENT_IOC_SET_BPF`` + ``PERF_EVENT_IOC_ENABLE`` that
    libbcc's ``bpf_attach_uprobe`` makes through the uprobe PMU (kernel 4.17), with the
    PMU's type and bits read once per process: libbcc reads the sysfs files again for
    every probe (~28 us of ~80 per probe). Made once per process (cached). None where the
    PMU or the syscall number is unknown; -1 on any failure (the caller then lets
    libbcc's own call word the error).
    ``pid`` -1 is every process. A non-zero ``ref_ctr_offset`` (a USDT semaphore's file
    offset, kernel 4.20) gives -1 on kernels without it.

    >>> fd = uprobe_opener()(prog_fd, False, b"/usr/bin/bash", 0x8d6e0, -1)  # doctest: +SKIP

    Minimum kernel: 4.17.
    """
    if _OPENER:
        return _OPENER[0]
    pmu = _uprobe_pmu()
    if pmu is None or platform.machine() not in _NR_PERF_EVENT_OPEN:
        _OPENER.append(None)
        return None

    def open_uprobe(prog_fd: int, ret: bool, path: bytes, file_offset: int, pid: int,
                    ref_ctr_offset: int = 0) -> int:
        if ref_ctr_offset and pmu.ref_ctr_shift is None:
            return -1
        name = ctypes.create_string_buffer(path)
        attr = _uprobe_attr(pmu, ret, name, file_offset, ref_ctr_offset)
        # as libbcc: every process on CPU 0's event (the program runs on any CPU), or
        # one process on any CPU
        fd = _perf_event_open(attr, pid, 0 if pid == -1 else -1)
        if fd < 0:
            return -1
        if (_ioctl(fd, _PERF_EVENT_IOC_SET_BPF, prog_fd) != 0
                or _ioctl(fd, _PERF_EVENT_IOC_ENABLE, 0) != 0):
            os.close(fd)
            return -1
        return fd

    _OPENER.append(open_uprobe)
    return open_uprobe


class PerfUprobe:
    """One uprobe made as a perf event, owning its fds; :meth:`close` detaches it.

    ``perf_fd`` is the perf event; ``link_fd`` the ``BPF_PERF_EVENT`` link that carries
    a cookie (None when no cookie was asked for: the program is then set on the event
    with ``PERF_EVENT_IOC_SET_BPF``). Closing twice is harmless; it is a context manager.
    """

    def __init__(self, perf_fd: int, link_fd: int | None) -> None:
        self.perf_fd: int | None = perf_fd
        self.link_fd = link_fd

    def close(self) -> None:
        """Detach: close the link (if any), then the perf event."""
        link, perf = self.link_fd, self.perf_fd
        self.link_fd = self.perf_fd = None
        if link is not None:
            os.close(link)
        if perf is not None:
            os.close(perf)

    def __enter__(self) -> PerfUprobe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def perf_uprobe(
    prog_fd: int,
    path: str | os.PathLike[str],
    offset: int,
    *,
    retprobe: bool = False,
    pid: int | None = None,
    ref_ctr_offset: int = 0,
    cookie: int | None = None,
    what: str | None = None,
) -> PerfUprobe:
    """Attach ``prog_fd`` (a KPROBE program) as one uprobe at ``path`` + file ``offset``.

    The per-probe path: one perf event of the ``uprobe`` PMU per probe. With a
    ``cookie`` the program is attached through a ``BPF_PERF_EVENT`` link carrying it
    (``bpf_get_attach_cookie(ctx)`` returns it, as on a uprobe_multi link); without,
    through ``PERF_EVENT_IOC_SET_BPF``. ``ref_ctr_offset`` is a USDT semaphore's file
    offset (the kernel counts it up while the uprobe exists).

    >>> with perf_uprobe(prog, "/usr/bin/bash", 0x8d6e0, cookie=7):  # doctest: +SKIP
    ...     pass

    Minimum kernel: 4.17 (uprobe PMU), 4.20 (``ref_ctr_offset``), 5.15 (``cookie``).

    Raises:
        NotSupportedError: no uprobe PMU, no ref_ctr_offset support, no BPF_PERF_EVENT
            links (for a cookie).
        BinaryNotFoundError, ProcessNotFoundError, SpecError, HookPermissionError,
        AttachError: as :func:`uprobe_multi`.
    """
    what = what or f"{'uretprobe' if retprobe else 'uprobe'} at {os.fspath(path)!s}+{offset:#x}"
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _U64_MAX:
        raise SpecError(f"{what}: offset {offset!r} is not an int in [0, 2**64)")
    for field, value in (("ref_ctr_offset", ref_ctr_offset), ("cookie", cookie)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= _U64_MAX):
            raise SpecError(f"{what}: {field} {value!r} is not an int in [0, 2**64)")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 < pid < 1 << 31):
        raise SpecError(f"{what}: pid must be a positive int, got {pid!r}")
    raw = _regular_file(path, what)
    pmu = _uprobe_pmu()
    if pmu is None or platform.machine() not in _NR_PERF_EVENT_OPEN:
        raise NotSupportedError(f"{what}: no uprobe PMU in /sys/bus/event_source/devices (or "
                                "an unknown machine); uprobes need CONFIG_UPROBE_EVENTS and "
                                "kernel 4.17", missing="uprobe PMU")
    if ref_ctr_offset and pmu.ref_ctr_shift is None:
        raise NotSupportedError(f"{what}: this kernel's uprobe PMU has no ref_ctr_offset "
                                "(USDT semaphores need kernel 4.20)",
                                missing="uprobe ref_ctr_offset (kernel 4.20)")
    c_path = ctypes.create_string_buffer(raw)
    attr = _uprobe_attr(pmu, retprobe, c_path, offset, ref_ctr_offset)
    c_pid = -1 if pid is None else pid
    perf = _perf_event_open(attr, c_pid, 0 if c_pid == -1 else -1)
    if perf < 0:
        code = -perf
        if code == _errno.ESRCH and pid is not None:
            raise ProcessNotFoundError(str(pid), where="this pid namespace")
        if code == _errno.ENOENT:
            raise BinaryNotFoundError(os.fsdecode(raw), where="the file system (the kernel "
                                      "could not open it)")
        raise _link_error(what, code, "the offset must be inside the file's executable code"
                          + ("; another uprobe there has a different ref_ctr_offset"
                             if ref_ctr_offset else ""))
    try:
        if cookie is not None:
            link = link_create(prog_fd, perf, BPF_PERF_EVENT, cookie=cookie,
                               what=f"{what} with a BPF cookie")
            code = -_ioctl(perf, _PERF_EVENT_IOC_ENABLE, 0)
            if code:
                os.close(link)
                raise _link_error(what, code)
            return PerfUprobe(perf, link)
        code = -_ioctl(perf, _PERF_EVENT_IOC_SET_BPF, prog_fd)
        if not code:
            code = -_ioctl(perf, _PERF_EVENT_IOC_ENABLE, 0)
        if code:
            raise _link_error(what, code)
        return PerfUprobe(perf, None)
    except AttachError as err:
        os.close(perf)
        if cookie is not None and err.errno == _errno.EINVAL:
            from ebpfhooks.kernel.features import FeatureStatus, perf_link

            if perf_link().status is FeatureStatus.NO:
                raise NotSupportedError(
                    f"{what}: a BPF cookie on a perf-event uprobe needs BPF_PERF_EVENT links "
                    f"(kernel 5.15); {perf_link().reason}: attach without a cookie",
                    missing="BPF_PERF_EVENT links (kernel 5.15)") from err
        raise
    except BaseException:
        os.close(perf)
        raise


# --------------------------------------------------------------------------- any PMU

#: ``perf_event_attr.type`` of the generic events (``enum perf_type_id``): hardware
#: counters (served by the CPU PMU) and software events (the ``software`` PMU).
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1

# bits of perf_event_attr's flag word (uapi/linux/perf_event.h)
_ATTR_DISABLED = 1 << 0
_ATTR_INHERIT = 1 << 1
_ATTR_FREQ = 1 << 10


def _int_in(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _open_error(what: str, code: int, *, pid: int | None, cpu: int | None,
                sample_freq: int) -> Exception:
    """perf_event_open(2)'s errno as a typed error (its errno meanings: perf_event_open(2))."""
    if code in (_errno.EACCES, _errno.EPERM):
        missing = _missing_caps(BPF_PROG_TYPE_PERF_EVENT) or "CAP_PERFMON"
        return _permission(what, code, missing, CAPS_TRACING + (
            "; without them kernel.perf_event_paranoid decides" if pid is not None else
            " (events of every process on a CPU need CAP_PERFMON)"))
    if code == _errno.ESRCH and pid is not None:
        return ProcessNotFoundError(str(pid), where="this pid namespace (perf_event_open "
                                    "gave ESRCH)")
    if code == _errno.ENOENT:
        # the type or config is not one this kernel (or its PMU) knows
        return NotSupportedError(f"{what}: the kernel has no such perf event "
                                 f"({_strerror(code)})", missing=f"the perf event of {what}")
    if code == _errno.EOPNOTSUPP:
        # the PMU counts the event but cannot interrupt on overflow: no sampling
        return NotSupportedError(f"{what}: the PMU cannot sample this event (no overflow "
                                 f"interrupt; {_strerror(code)}); many virtual PMUs only "
                                 "count", missing=f"a PMU that samples {what}")
    if cpu is not None and code in (_errno.ENODEV, _errno.EINVAL):
        from ebpfhooks.kernel.pmu import online_cpus

        # an offline CPU gives ENODEV; one past nr_cpu_ids, EINVAL
        if code == _errno.ENODEV or cpu not in online_cpus():
            return AttachError(f"the kernel refused {what}: CPU {cpu} is not online "
                               f"({_strerror(code)}); see /sys/devices/system/cpu/online",
                               errno=code)
    if code == _errno.EINVAL and sample_freq:
        from ebpfhooks.kernel.pmu import max_sample_rate

        limit = max_sample_rate()
        if limit is not None and sample_freq > limit:
            return AttachError(
                f"the kernel refused {what}: {sample_freq} Hz is above "
                f"kernel.perf_event_max_sample_rate ({limit}; the kernel lowers it by itself "
                f"when sampling interrupts take too long): sample at {limit} Hz or less",
                errno=code)
    return _link_error(what, code, "check the event's type, config and sample period")


def perf_event_open(
    ev_type: int,
    config: int,
    *,
    sample_period: int = 0,
    sample_freq: int = 0,
    pid: int | None = None,
    cpu: int | None = None,
    what: str | None = None,
) -> int:
    """Open one sampling perf event, disabled; return its fd (the caller owns and closes it).

    ``ev_type`` is a PMU's type (:data:`PERF_TYPE_SOFTWARE`, :data:`PERF_TYPE_HARDWARE`,
    or a sysfs ``type``), ``config`` the event. Exactly one of ``sample_period`` (an
    overflow every N events, or N ns for the clocks) and ``sample_freq`` (N overflows a
    second, the kernel adjusting the period) is given. ``pid`` follows that thread (and
    the threads and processes it starts afterwards: ``inherit``, as bcc and bpftrace
    do) on ``cpu`` or any CPU; without ``pid`` the event counts every process on
    ``cpu``, which must then be given.

    >>> fd = perf_event_open(PERF_TYPE_SOFTWARE, 2, sample_period=1, pid=1234)  # doctest: +SKIP

    Minimum kernel: 2.6.31 (BPF programs on perf events: 4.9).

    Raises:
        SpecError: arguments out of range (the event needs a CPU, or a pid).
        NotSupportedError: the kernel or PMU has no such event (ENOENT), or cannot
            sample it (EOPNOTSUPP).
        ProcessNotFoundError: no thread ``pid``.
        HookPermissionError: not privileged.
        AttachError: any other refusal (an offline CPU, a rate above
            ``kernel.perf_event_max_sample_rate``), with the errno.
    """
    what = what or f"perf event type {ev_type} config {config}"
    if not _int_in(ev_type, 0, 0xFFFFFFFF) or not _int_in(config, 0, _U64_MAX):
        raise SpecError(f"{what}: type {ev_type!r} and config {config!r} must be ints "
                        "(u32, u64)")
    if not _int_in(sample_period, 0, (1 << 63) - 1) or not _int_in(sample_freq, 0,
                                                                    (1 << 63) - 1):
        raise SpecError(f"{what}: sample_period {sample_period!r} and sample_freq "
                        f"{sample_freq!r} must be non-negative ints below 2**63")
    if bool(sample_period) == bool(sample_freq):
        raise SpecError(f"{what}: give exactly one of sample_period and sample_freq "
                        f"(got {sample_period} and {sample_freq})")
    if pid is not None and not _int_in(pid, 1, (1 << 31) - 1):
        raise SpecError(f"{what}: pid must be a positive int, got {pid!r}")
    if cpu is not None and not _int_in(cpu, 0, (1 << 31) - 1):
        raise SpecError(f"{what}: cpu must be a non-negative int, got {cpu!r}")
    if pid is None and cpu is None:
        raise SpecError(f"{what}: an event of every process needs a CPU (cpu=N); or give "
                        "a pid to follow one process on any CPU")
    flags = _ATTR_DISABLED | (_ATTR_INHERIT if pid is not None else 0)
    attr = PerfEventAttr(type=ev_type, size=ctypes.sizeof(PerfEventAttr), config=config,
                         flags=flags | (_ATTR_FREQ if sample_freq else 0),
                         sample_period=sample_freq or sample_period)
    fd = _perf_event_open(attr, -1 if pid is None else pid, -1 if cpu is None else cpu)
    if fd < 0:
        raise _open_error(what, -fd, pid=pid, cpu=cpu, sample_freq=sample_freq)
    return fd


class PerfEvents:
    """Perf events that carry one BPF program, owning their fds; :meth:`close` detaches.

    ``fds`` are the events' fds, one per CPU (or one that follows a process). Closing
    disables and closes every one of them (the program stops firing at once) and may be
    called twice; it is a context manager. The fds also close when the process dies.
    """

    def __init__(self, fds: Sequence[int] = (), cpus: Sequence[int | None] = ()) -> None:
        self.fds: list[int] = list(fds)
        #: The CPU of each event (None: the event follows its process on any CPU).
        self.cpus: list[int | None] = list(cpus)

    def close(self) -> None:
        """Disable and close every event; the first close error is raised after all."""
        fds, self.fds, self.cpus = self.fds, [], []
        first: OSError | None = None
        for fd in fds:
            _ioctl(fd, _PERF_EVENT_IOC_DISABLE, 0)
            try:
                os.close(fd)
            except OSError as err:
                first = first or err
        if first is not None:
            raise first

    def __len__(self) -> int:
        return len(self.fds)

    def __enter__(self) -> PerfEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PerfEvents {len(self.fds)} open>"


def perf_event_attach(
    prog_fd: int,
    ev_type: int,
    config: int,
    *,
    sample_period: int = 0,
    sample_freq: int = 0,
    pid: int | None = None,
    cpus: Sequence[int] | None = None,
    what: str | None = None,
) -> PerfEvents:
    """Run ``prog_fd`` (a ``PERF_EVENT`` program) on every overflow of a perf event.

    One event per CPU of ``cpus``; without ``cpus``, one per online CPU, or with a
    ``pid`` one event that follows that thread (and what it starts afterwards) on any
    CPU. Every event is opened disabled and given the program
    (``PERF_EVENT_IOC_SET_BPF``) before any is enabled, so the program runs on all or
    none of them; if anything fails, every event opened so far is closed. The program
    reads ``struct bpf_perf_event_data *ctx`` (the registers and the sample period).

    >>> with perf_event_attach(prog_fd, PERF_TYPE_SOFTWARE, 0,  # doctest: +SKIP
    ...                        sample_freq=49) as events:
    ...     print(len(events), "CPUs sampled")

    Minimum kernel: 4.9. The returned :class:`PerfEvents` owns the fds: close it.

    Raises what :func:`perf_event_open` raises, and :class:`AttachError` when the
    kernel refuses the program on the event (not a ``PERF_EVENT`` program: EINVAL).
    """
    what = what or f"perf event type {ev_type} config {config}"
    if cpus is None:
        if pid is not None:
            chosen: list[int | None] = [None]
        else:
            from ebpfhooks.kernel.pmu import online_cpus

            chosen = list(online_cpus())
    else:
        chosen = list(cpus)
    events = PerfEvents()
    try:
        for cpu in chosen:
            fd = perf_event_open(ev_type, config, sample_period=sample_period,
                                 sample_freq=sample_freq, pid=pid, cpu=cpu,
                                 what=what if cpu is None else f"{what} on CPU {cpu}")
            events.fds.append(fd)
            events.cpus.append(cpu)
            code = -_ioctl(fd, _PERF_EVENT_IOC_SET_BPF, prog_fd)
            if code:
                raise _link_error(f"{what}: setting the BPF program on the perf event", code,
                                  "a perf event takes a PERF_EVENT program "
                                  "(struct bpf_perf_event_data *ctx)")
        for fd in events.fds:
            code = -_ioctl(fd, _PERF_EVENT_IOC_ENABLE, 0)
            if code:
                raise _link_error(f"{what}: enabling the perf event", code)
    except BaseException:
        events.close()
        raise
    return events
