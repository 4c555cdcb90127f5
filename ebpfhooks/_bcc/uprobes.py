"""User-space probes: one uprobe at a file offset, groups of them, USDT probes.

>>> attach_uprobe(bpf, "on_call", "/usr/bin/bash", 0x8d6e0, pid=None, ret=False,
...               what="uprobe:/usr/bin/bash:readline")  # doctest: +SKIP

Minimum kernel: 4.17 (uprobe PMU; tracefs uprobes before), 5.15 (cookies), 6.6 (uprobe_multi).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from ebpfhooks import _bccshim, bpfsys
from ebpfhooks._bcc import core
from ebpfhooks._bcc.core import (
    CAPS_TRACING,
    Attachment,
    _attach_error,
    _lib,
    _load_func,
    compiled_insns,
)
from ebpfhooks.errors import (
    AttachError,
    EbpfHooksError,
    HookPermissionError,
    NotSupportedError,
)

_UPROBE_CALLS: dict[str, Any] = {}


def _is_libbcc(lib: Any) -> bool:
    import ctypes

    return isinstance(lib, ctypes.CDLL)


_UPROBE_OPENER: list[Callable[..., int] | None] = []


def _uprobe_opener() -> Callable[..., int] | None:
    """``open(prog_fd, ret, path, file_offset, pid) -> perf fd or -1``, or None.

    :func:`ebpfhooks.bpfsys.uprobe_opener` (the raw perf_event_open(2) of the uprobe PMU),
    looked up once; -1 on any failure, after which libbcc's own call decides what the
    error is.
    """
    if not _UPROBE_OPENER:
        _UPROBE_OPENER.append(bpfsys.uprobe_opener())
    return _UPROBE_OPENER[0]


def _attach_uprobe_call(lib: Any) -> Any:
    """libbcc's ``bpf_attach_uprobe`` called with its real prototype: 7 arguments.

    bcc's Python (0.26 and earlier) declares 6 and leaves out the last,
    ``uint32_t ref_ctr_offset``, so the C function reads it from whatever is on the
    stack (6 on this machine). The kernel then takes the uprobe for one with a USDT
    semaphore at that file offset, and refuses any other tool's uprobe at the same
    place (bpftrace, libbpf: "ref_ctr_offset mismatch", EINVAL) while it is attached.
    ebpfhooks passes 0 through its own handle on the library, leaving bcc's
    declaration as bcc uses it. A stand-in library (tests) is called as it is.
    """
    import ctypes

    if not _is_libbcc(lib):
        return lib.bpf_attach_uprobe
    path = _bccshim.libbcc_path(lib)
    call = _UPROBE_CALLS.get(path)
    if call is None:
        call = ctypes.CDLL(path, use_errno=True).bpf_attach_uprobe
        call.restype = ctypes.c_int
        call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                         ctypes.c_uint64, ctypes.c_int, ctypes.c_uint32]
        _UPROBE_CALLS[path] = call
    return call


def attach_uprobe(
    bpf: Any,
    fn_name: str,
    path: str,
    file_offset: int,
    *,
    pid: int | None,
    ret: bool,
    what: str,
) -> Attachment:
    """Attach a uprobe/uretprobe at exactly ``path`` + ``file_offset``.

    bcc's ``attach_uprobe`` would resolve the symbol again with its own
    resolver; we pass the kernel the file offset ebpfhooks resolved, through
    libbcc's ``bpf_attach_uprobe``, and register the fd with the BPF object so
    bcc's cleanup knows it too.
    """
    fn = _load_func(bpf, fn_name, "KPROBE", what)
    lib = _lib()
    c_pid = -1 if pid is None else pid
    path_b = os.fsencode(path)
    ev = _bccshim.uprobe_event_name(bpf, ret, path_b, file_offset, c_pid)
    ev += b"_" + fn_name.encode()
    uprobes = _bccshim.attached(bpf, "uprobe")
    if ev in uprobes:
        raise AttachError(f"{what} is already attached to {fn_name!r} in this BPF object")
    _bccshim.check_probe_quota(bpf, what)
    fast = _uprobe_opener() if _is_libbcc(lib) else None
    fd = fast(fn.fd, ret, path_b, file_offset, c_pid) if fast is not None else -1
    if fd < 0:  # libbcc decides (and words) any failure: the PMU again, then tracefs
        fd = _attach_uprobe_call(lib)(fn.fd, 1 if ret else 0, ev, path_b, file_offset, c_pid, 0)
    if fd < 0:
        raise _attach_error(what, OSError(core._errno_now(), "bpf_attach_uprobe"), CAPS_TRACING)
    _bccshim.add_uprobe_fd(bpf, ev, fd)

    def detach() -> None:
        if ev not in uprobes:
            return
        try:
            bpf.detach_uprobe_event(ev)
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="perf_event")


# ---------------------------------------------------------------- uprobe groups

#: How a group attaches its uprobes (:func:`attach_uprobe_batch`): ``"auto"`` (one
#: uprobe_multi link per batch where the kernel has them, 6.6+, else one perf event per
#: probe) or ``"perf_event"`` (one perf event per probe on every kernel). Overridden by the
#: ``EBPFHOOKS_UPROBE_ATTACH`` environment variable.
UPROBE_ATTACH_MODES = ("auto", "perf_event")


def uprobe_attach_mode() -> str:
    """The uprobe group attach mechanism in force (``EBPFHOOKS_UPROBE_ATTACH``, default
    ``auto``); raises :class:`AttachError` for an unknown value."""
    mode = os.environ.get("EBPFHOOKS_UPROBE_ATTACH", "auto").strip().lower() or "auto"
    if mode not in UPROBE_ATTACH_MODES:
        raise AttachError(
            f"EBPFHOOKS_UPROBE_ATTACH={mode!r} is not one of {', '.join(UPROBE_ATTACH_MODES)}; "
            "unset it to let ebpfhooks choose (uprobe_multi links on kernels >= 6.6)"
        )
    return mode


#: What :func:`attach_uprobe_batch` gives for each hook: its attachment and the cookie the
#: kernel got for it (None: attached without one), or the error that stopped it.
UprobeOutcome = tuple[Attachment, int | None] | Exception


def _feature_yes(name: str) -> bool:
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus

    return bool(getattr(features, name)().status is FeatureStatus.YES)


def attach_uprobe_batch(
    bpf: Any,
    fn_name: str,
    path: str,
    offsets: list[int],
    cookies: list[int],
    *,
    pid: int | None,
    ret: bool,
    whats: list[str],
    fatal: Callable[[Exception], bool] = bool,
) -> list[UprobeOutcome]:
    """Attach ``fn_name`` at each file offset of ``path`` (one hook each, in order).

    Two or more offsets on a kernel with uprobe_multi links (6.6+,
    :func:`ebpfhooks.kernel.features.uprobe_multi`, cached) take ONE link: the function is
    loaded again as a KPROBE program with expected attach type ``BPF_TRACE_UPROBE_MULTI``
    (bcc's loaded copy cannot be linked so: bcc caches functions by name, without the
    attach type) and linked with ``cookies[i]`` at ``offsets[i]``; every hook's outcome is
    then the same :class:`Attachment` (via ``"uprobe_multi"``, ``fd`` the link), which
    closes the link and the program on ``detach()``. Otherwise, or when that link is
    refused with an error for which ``fatal(err)`` is false, each offset gets its own perf
    event: through a ``BPF_PERF_EVENT`` link carrying its cookie where the kernel has them
    (5.15+, via ``"perf_link"``), else bcc's way without a cookie (:func:`attach_uprobe`).

    ``whats[i]`` names hook ``i`` in errors. An error for which ``fatal(err)`` is true
    (by default: any) undoes what this call attached and is raised; any other takes the
    hook's place in the result.

    >>> attach_uprobe_batch(bpf, "on_call", "/usr/bin/bash", [0x8d6e0, 0x8d7a0], [0, 1],
    ...                     pid=None, ret=False, whats=["a", "b"])  # doctest: +SKIP

    Minimum kernel: 6.6 for one link, 5.15 for cookies on perf events, 4.17 otherwise.
    """
    if not len(offsets) == len(cookies) == len(whats):
        raise ValueError("attach_uprobe_batch: offsets, cookies and whats differ in length")
    mode = uprobe_attach_mode()
    if len(offsets) >= 2 and mode == "auto" and _feature_yes("uprobe_multi"):
        shared = _attach_uprobe_multi(bpf, fn_name, path, offsets, cookies, pid=pid, ret=ret,
                                      what=_batch_what(whats, path, pid, ret), fatal=fatal)
        if shared is not None:
            return [(shared, cookie) for cookie in cookies]
    with_cookies = _feature_yes("perf_link")
    out: list[UprobeOutcome] = []
    made: list[Attachment] = []
    try:
        for offset, cookie, what in zip(offsets, cookies, whats, strict=True):
            try:
                if with_cookies:
                    attachment, given = attach_uprobe_cookie(bpf, fn_name, path, offset, cookie,
                                                             pid=pid, ret=ret, what=what)
                else:
                    attachment = attach_uprobe(bpf, fn_name, path, offset, pid=pid, ret=ret,
                                               what=what)
                    given = None
            except EbpfHooksError as err:
                if fatal(err):
                    raise
                out.append(err)
                continue
            made.append(attachment)
            out.append((attachment, given))
    except BaseException:
        for attachment in reversed(made):  # all or nothing: undo this batch
            with contextlib.suppress(Exception):  # the first error is the one to report
                attachment.detach()
        raise
    return out


def _batch_what(whats: list[str], path: str, pid: int | None, ret: bool) -> str:
    n = len(whats)
    kind = "uretprobes" if ret else "uprobes"
    where = f"{path}" + (f" in pid {pid}" if pid is not None else "")
    shown = ", ".join(whats) if n <= 2 else f"{whats[0]}, ..., {whats[-1]}"
    return f"{n} {kind} on {where} ({shown})"


def _attach_uprobe_multi(
    bpf: Any, fn_name: str, path: str, offsets: list[int], cookies: list[int], *,
    pid: int | None, ret: bool, what: str, fatal: Callable[[Exception], bool],
) -> Attachment | None:
    """One uprobe_multi link for all ``offsets``, or None when the per-probe path should
    decide (the multi copy of the program does not load, or the link is refused with a
    non-fatal error)."""
    try:
        insns, license = compiled_insns(bpf, fn_name)
        prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, license=license,
                                name=fn_name[:15],
                                expected_attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI,
                                what=f"loading {fn_name!r} for {what}")
    except HookPermissionError:
        raise
    except EbpfHooksError:
        # not a real bcc module, a closed one, or a program the verifier refuses: the
        # per-probe path loads it through bcc, which says what is wrong in today's words
        return None
    try:
        link = bpfsys.uprobe_multi(prog, path, offsets, cookies=cookies, retprobe=ret, pid=pid,
                                   what=what)
    except EbpfHooksError as err:
        os.close(prog)
        if fatal(err) and not isinstance(err, NotSupportedError):
            raise
        return None
    except BaseException:
        os.close(prog)
        raise

    def detach() -> None:
        try:
            os.close(link)  # the kernel removes every uprobe of the link at once
        finally:
            os.close(prog)

    return Attachment(detach, via="uprobe_multi", fd=link)


def attach_uprobe_cookie(
    bpf: Any, fn_name: str, path: str, file_offset: int, cookie: int, *,
    pid: int | None, ret: bool, what: str,
) -> tuple[Attachment, int | None]:
    """One uprobe whose program reads ``cookie`` with ``bpf_get_attach_cookie(ctx)``.

    The perf event of the uprobe PMU gets bcc's loaded copy of ``fn_name`` through a
    ``BPF_PERF_EVENT`` link carrying the cookie (:func:`ebpfhooks.bpfsys.perf_uprobe`);
    the link holds the perf event, so one fd (``Attachment.fd``, the link) holds the
    probe. Where the kernel cannot (no uprobe PMU, no perf links: before 5.15), the probe
    is attached as :func:`attach_uprobe` does and the cookie is None.

    >>> attachment, cookie = attach_uprobe_cookie(bpf, "on_call", "/usr/bin/bash",
    ...                                           0x8d6e0, 7, pid=None, ret=False,
    ...                                           what="uprobe:/usr/bin/bash:readline")
    ... # doctest: +SKIP

    Minimum kernel: 5.15 (4.17 without the cookie).
    """
    fn = _load_func(bpf, fn_name, "KPROBE", what)
    try:
        probe = bpfsys.perf_uprobe(fn.fd, path, file_offset, retprobe=ret, pid=pid,
                                   cookie=cookie, what=f"attaching {what}")
    except NotSupportedError:
        return attach_uprobe(bpf, fn_name, path, file_offset, pid=pid, ret=ret, what=what), None
    if probe.perf_fd is not None and probe.link_fd is not None:
        os.close(probe.perf_fd)  # the link holds a reference to the perf event
        probe.perf_fd = None
    return Attachment(probe.close, via="perf_link", fd=probe.link_fd), cookie


# ---------------------------------------------------------------- USDT
# USDT probes: uprobes at .note.stapsdt locations with their semaphores (issue 17)


def attach_usdt(bpf: Any, fn_name: str, path: str, locations: list[tuple[int, int]], *,
                pid: int | None, cookies: bool, what: str) -> Attachment:
    """Attach ``fn_name`` at every ``(file offset, semaphore file offset)`` of a USDT probe.

    One perf-event uprobe per location (:func:`ebpfhooks.bpfsys.perf_uprobe`), the
    semaphore as its ``ref_ctr_offset`` (0: none), so the kernel counts the semaphore
    in every process mapping ``path``; with ``cookies`` location ``i`` carries cookie
    ``i`` (a ``BPF_PERF_EVENT`` link). All or nothing: a refused location closes the
    ones made. The :class:`Attachment` owns every fd; ``fd`` is the perf event of a
    single location (None for several).
    """
    fn = _load_func(bpf, fn_name, "KPROBE", what)
    made: list[bpfsys.PerfUprobe] = []
    try:
        for i, (offset, ref_ctr) in enumerate(locations):
            where = what if len(locations) == 1 else f"{what} (location {i}, {offset:#x})"
            made.append(bpfsys.perf_uprobe(fn.fd, path, offset, pid=pid, ref_ctr_offset=ref_ctr,
                                           cookie=i if cookies else None, what=where))
    except BaseException:
        for probe in made:
            probe.close()
        raise

    def detach() -> None:
        for probe in made:
            probe.close()

    return Attachment(detach, via="bpf_link" if cookies else "perf_event",
                      fd=made[0].perf_fd if len(made) == 1 else None)
