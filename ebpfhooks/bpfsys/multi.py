"""uprobe_multi: many uprobes of one file made (and removed) by one ``BPF_LINK_CREATE``.

The link of type ``BPF_TRACE_UPROBE_MULTI`` (kernel 6.6) holds every uprobe; closing
its fd removes them all at once, and the kernel does it when the process dies::

    from ebpfhooks import bpfsys
    prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, name="count",
                            expected_attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI)
    link = bpfsys.uprobe_multi(prog, "/usr/bin/bash", [0x3f0a0, 0x3f1c0])
    ...
    os.close(link)  # detaches every uprobe of the link at once
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Sequence

from ebpfhooks.bpfsys import bpf
from ebpfhooks.bpfsys._attr import (
    BPF_F_UPROBE_MULTI_RETURN,
    BPF_LINK_CREATE,
    BPF_TRACE_UPROBE_MULTI,
    ENOTSUPP,
    LinkCreateAttr,
)
from ebpfhooks.bpfsys.bpf import _addr, _link_error, _strerror
from ebpfhooks.bpfsys.perf import _U64_MAX, _regular_file
from ebpfhooks.errors import (
    AttachError,
    BinaryNotFoundError,
    NotSupportedError,
    ProcessNotFoundError,
    SpecError,
)

__all__ = ["MAX_UPROBE_MULTI_CNT", "uprobe_multi"]

#: The kernel's MAX_UPROBE_MULTI_CNT: most uprobes one link may hold.
MAX_UPROBE_MULTI_CNT = 1 << 20


def _u64_array(values: Sequence[int], field: str, cnt: int) -> ctypes.Array[ctypes.c_uint64]:
    if len(values) != cnt:
        raise SpecError(f"uprobe_multi: {len(values)} {field} for {cnt} offsets "
                        "(expected exactly one per offset)")
    arr = (ctypes.c_uint64 * cnt)()
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
            raise SpecError(f"uprobe_multi: {field}[{i}] = {value!r} is not an int in "
                            "[0, 2**64)")
        arr[i] = value
    return arr


def uprobe_multi(
    prog_fd: int,
    path: str | os.PathLike[str],
    offsets: Sequence[int],
    ref_ctr_offsets: Sequence[int] | None = None,
    cookies: Sequence[int] | None = None,
    *,
    retprobe: bool = False,
    pid: int | None = None,
    what: str | None = None,
) -> int:
    """Attach ``prog_fd`` at every file offset of ``path`` with one uprobe_multi link.

    One ``BPF_LINK_CREATE`` (attach type :data:`BPF_TRACE_UPROBE_MULTI`) makes all the
    uprobes; closing the returned fd removes all of them at once (and the kernel does it
    when the process dies, however it dies). The program must be a KPROBE program loaded
    with ``expected_attach_type=BPF_TRACE_UPROBE_MULTI``. ``offsets`` are file offsets
    (not virtual addresses); ``ref_ctr_offsets`` the file offsets of USDT semaphores the
    kernel counts up while the uprobe exists (0: none), one per offset; ``cookies`` the
    value ``bpf_get_attach_cookie(ctx)`` returns at each offset; ``retprobe`` makes them
    uretprobes; ``pid`` limits them to one process.

    >>> link = uprobe_multi(prog, "/usr/bin/bash", [0x8d6e0, 0x8d7a0],
    ...                     cookies=[1, 2])  # doctest: +SKIP
    >>> os.close(link)  # doctest: +SKIP

    Minimum kernel: 6.6 (:func:`ebpfhooks.kernel.features.uprobe_multi` probes for it).

    Raises:
        SpecError: empty or malformed offsets, cookies or ref_ctr_offsets.
        BinaryNotFoundError: ``path`` is missing or not a regular file.
        ProcessNotFoundError: no process ``pid``.
        NotSupportedError: the kernel has no uprobe_multi links (before 6.6) or no uprobes.
        HookPermissionError, AttachError: the kernel refused, with the errno.
    """
    what = what or f"{'uretprobes' if retprobe else 'uprobes'} on {os.fspath(path)!s}"
    cnt = len(offsets)
    if cnt == 0:
        raise SpecError(f"uprobe_multi for {what}: no offsets given (expected at least one)")
    if cnt > MAX_UPROBE_MULTI_CNT:
        raise SpecError(f"uprobe_multi for {what}: {cnt} offsets, more than one link may "
                        f"hold ({MAX_UPROBE_MULTI_CNT}); split them over several links")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 < pid < 1 << 31):
        raise SpecError(f"uprobe_multi: pid must be a positive int, got {pid!r}")
    raw = _regular_file(path, f"uprobe_multi for {what}")
    c_path = ctypes.create_string_buffer(raw)
    offs = _u64_array(offsets, "offsets", cnt)
    refs = _u64_array(ref_ctr_offsets, "ref_ctr_offsets", cnt) if ref_ctr_offsets else None
    cooks = _u64_array(cookies, "cookies", cnt) if cookies is not None else None
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=0, attach_type=BPF_TRACE_UPROBE_MULTI,
                          flags=0)
    um = attr.u.uprobe_multi
    um.path, um.offsets, um.ref_ctr_offsets = (ctypes.addressof(c_path), _addr(offs),
                                               _addr(refs))
    um.cookies, um.cnt = _addr(cooks), cnt
    um.flags = BPF_F_UPROBE_MULTI_RETURN if retprobe else 0
    um.pid = pid or 0
    fd = bpf._sys_bpf(BPF_LINK_CREATE, attr)
    if fd >= 0:
        return fd
    raise _uprobe_multi_error(-fd, what, raw, pid)


def _uprobe_multi_error(code: int, what: str, path: bytes, pid: int | None) -> Exception:
    where = f"uprobe_multi link for {what}"
    if code == _errno.EINVAL or code in (ENOTSUPP, _errno.EOPNOTSUPP):
        from ebpfhooks.kernel.features import FeatureStatus
        from ebpfhooks.kernel.features import uprobe_multi as probe

        feature = probe()
        if feature.status is FeatureStatus.NO or code != _errno.EINVAL:
            return NotSupportedError(
                f"{where}: this kernel has no uprobe_multi links ({_strerror(code)}; "
                f"{feature.reason}); they need kernel 6.6 built with CONFIG_UPROBES: attach "
                "the uprobes one by one (perf events) instead",
                missing="uprobe_multi links (kernel 6.6)")
        return AttachError(
            f"the kernel refused the {where}: {_strerror(code)}; the program must be a "
            "KPROBE program loaded with expected attach type BPF_TRACE_UPROBE_MULTI (48), "
            "every offset must be inside the file, and a uprobe already at one of the "
            "offsets must have the same ref_ctr_offset", errno=code)
    if code == _errno.ENOENT:
        return BinaryNotFoundError(os.fsdecode(path), where="the file system (the kernel "
                                   "could not open it)")
    if code == _errno.EBADF:
        return AttachError(f"the kernel refused the {where}: {_strerror(code)}; the "
                           "program fd is not a loaded BPF program, or the path is not a "
                           "regular file", errno=code)
    if code == _errno.ESRCH and pid is not None:
        return ProcessNotFoundError(str(pid), where="this pid namespace")
    if code == _errno.E2BIG:
        return AttachError(f"the kernel refused the {where}: too many offsets for one link "
                           f"(E2BIG; at most {MAX_UPROBE_MULTI_CNT})", errno=code)
    return _link_error(where, code)
