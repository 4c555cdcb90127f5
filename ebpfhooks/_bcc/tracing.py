"""Kernel events through bcc: kprobes, tracepoints, raw tracepoints; perf events.

>>> attach_tracepoint(bpf, "on_open", "syscalls", "sys_enter_openat",  # doctest: +SKIP
...                   what="tracepoint:syscalls:sys_enter_openat")

Minimum kernel: 4.1 (kprobes), 4.7 (tracepoints), 4.17 (raw tracepoints), 4.9 (perf events).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ebpfhooks import _bccshim, bpfsys
from ebpfhooks._bcc.core import (
    CAPS_TRACING,
    Attachment,
    _attach_error,
    _autoloaded,
    _load_func,
    compiled_insns,
)
from ebpfhooks.errors import (
    AttachError,
)


def attach_kprobe(
    bpf: Any, fn_name: str, symbol: str, offset: int, *, ret: bool, maxactive: int, what: str
) -> Attachment:
    """Attach a kprobe (``ret=False``) or kretprobe; return its detach."""
    fn_b = fn_name.encode()
    _load_func(bpf, fn_name, "KPROBE", what)
    ev = (b"r_" if ret else b"p_") + symbol.encode().replace(b"+", b"_").replace(b".", b"_")
    adopted = (fn_b in _bccshim.attached(bpf, "kprobe").get(ev, {})
               and fn_name.startswith("kretprobe__" if ret else "kprobe__")
               and not offset and not maxactive)
    if not adopted:  # else bcc attached it here itself, at compile: the link adopts that
        try:
            if ret:
                bpf.attach_kretprobe(event=symbol.encode(), fn_name=fn_b, maxactive=maxactive)
            else:
                bpf.attach_kprobe(event=symbol.encode(), event_off=offset, fn_name=fn_b)
        except Exception as err:
            raise _attach_error(
                what, err, CAPS_TRACING,
                "the function may be inlined, marked notrace, or on the kprobe blacklist",
            ) from err

    def detach() -> None:
        if fn_b not in _bccshim.attached(bpf, "kprobe").get(ev, {}):
            return  # bcc's own cleanup already ran
        try:
            bpf.detach_kprobe_event_by_fn(ev, fn_b)
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="bcc autoload" if adopted else "bcc")


def _attach_event(
    bpf: Any, fn_name: str, prog_type: str, key: bytes, table: str, noun: str, what: str,
    attach: Callable[[], None], detach_call: Callable[[], None], autoload_name: str,
) -> Attachment:
    """The shared path of tracepoints and raw tracepoints: bcc keys both by event name.

    A function bcc attached to this very event when it compiled the module (named
    ``autoload_name``: ``tracepoint__CAT__EVENT``, ``raw_tracepoint__EVENT``) is adopted:
    the link owns and detaches bcc's attachment.
    """
    _load_func(bpf, fn_name, prog_type, what)
    adopted = False
    if key in _bccshim.attached(bpf, table):
        adopted = fn_name == autoload_name
        auto = None if adopted else _autoloaded(fn_name, what)
        if auto is not None:
            raise auto
        if not adopted:
            raise AttachError(
                f"{what} is already attached in this BPF object; "
                f"bcc keeps one program per {noun} per BPF object: use another BPF object"
            )
    if not adopted:
        try:
            attach()
        except Exception as err:
            raise _attach_error(what, err, CAPS_TRACING) from err

    def detach() -> None:
        if key not in _bccshim.attached(bpf, table):
            return  # bcc's own cleanup already ran
        try:
            detach_call()
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="bcc autoload" if adopted else "bcc")


def attach_tracepoint(bpf: Any, fn_name: str, category: str, event: str, *,
                      what: str) -> Attachment:
    """Attach a tracepoint program; return its detach."""
    tp = f"{category}:{event}".encode()
    return _attach_event(
        bpf, fn_name, "TRACEPOINT", tp, "tracepoint", "tracepoint", what,
        lambda: bpf.attach_tracepoint(tp=tp, fn_name=fn_name.encode()),
        lambda: bpf.detach_tracepoint(tp),
        f"tracepoint__{category}__{event}",
    )


def attach_raw_tracepoint(bpf: Any, fn_name: str, event: str, *, what: str) -> Attachment:
    """Attach a raw tracepoint program; return its detach."""
    tp = event.encode()
    return _attach_event(
        bpf, fn_name, "RAW_TRACEPOINT", tp, "raw_tracepoint", "raw tracepoint", what,
        lambda: bpf.attach_raw_tracepoint(tp=tp, fn_name=fn_name.encode()),
        lambda: bpf.detach_raw_tracepoint(tp),
        f"raw_tracepoint__{event}",
    )


# ---------------------------------------------------------------- perf events
# profile, interval, software and hardware events (issue 17)


def attach_perf_event(
    bpf: Any,
    fn_name: str,
    ev_type: int,
    config: int,
    *,
    sample_period: int = 0,
    sample_freq: int = 0,
    pid: int | None = None,
    cpus: tuple[int, ...] | None = None,
    what: str,
) -> Attachment:
    """Load ``fn_name`` as a ``PERF_EVENT`` program and run it on a perf event per CPU.

    What bcc's ``attach_perf_event`` does, through :func:`ebpfhooks.bpfsys.perf_event_attach`:
    the events are this attachment's own (bcc's would share one slot per event type and
    config, so a ``profile`` and an ``interval`` hook of one module would overwrite each
    other, and a CPU failing half-way would leave the CPUs before it attached); all are
    opened or none, and ``detach`` closes every one.

    >>> att = attach_perf_event(bpf, "on_sample", 1, 0, sample_freq=49,  # doctest: +SKIP
    ...                         what="profile:hz:49")
    """
    fn = _load_func(bpf, fn_name, "PERF_EVENT", what)
    events = bpfsys.perf_event_attach(fn.fd, ev_type, config, sample_period=sample_period,
                                      sample_freq=sample_freq, pid=pid, cpus=cpus, what=what)
    return Attachment(events.close, via="perf_event")


# ---------------------------------------------------------------- tracing programs (BTF)
# fentry/fexit, tp_btf, LSM: bcc-compiled instructions loaded with attach_btf_id


def attach_btf_program(
    bpf: Any,
    fn_name: str,
    *,
    prog_type: int,
    attach_type: int,
    type_id: int,
    btf_object: str,
    what: str,
    autoload: tuple[str, str] | None = None,
) -> Attachment:
    """Load what bcc compiled for ``fn_name`` as a program at a BTF target; attach it.

    fentry/fexit and tp_btf are ``BPF_PROG_TYPE_TRACING`` programs, LSM programs
    ``BPF_PROG_TYPE_LSM``; ``attach_type`` is their expected attach type and ``type_id``
    the target's id in the kernel BTF object ``btf_object`` (``"vmlinux"`` or a module,
    whose BTF fd is passed as ``attach_btf_obj_fd``). The instructions are bcc's
    (:func:`compiled_insns`), loaded with ``BPF_PROG_LOAD`` by :mod:`ebpfhooks.bpfsys`,
    so the function may have any name (bcc itself loads such programs only when named
    ``kfunc__FUNC``, ``kretfunc__FUNC`` or ``lsm__HOOK``, the name giving the target),
    and attached with ``BPF_RAW_TRACEPOINT_OPEN``. The attachment owns both fds (``fd``
    is the link's): closing them detaches and unloads.

    ``autoload`` is ``(bcc's table, the function name bcc would have attached here)``:
    a function of that name bcc attached itself when it compiled the module
    (``KFUNC_PROBE(vfs_read)``) is adopted; another function named for bcc's
    autoloading is refused (:func:`_autoloaded`).

    Raises :class:`HookPermissionError`, :class:`ebpfhooks.NotSupportedError` (no BPF
    trampolines), :class:`ProgramError` (the verifier's log tail: e.g. an argument the
    function does not have) and :class:`AttachError`.
    """
    fn_b = fn_name.encode()
    if autoload is not None:
        table, bcc_name = autoload
        if fn_name == bcc_name and fn_b in _bccshim.attached(bpf, table):

            def detach_adopted() -> None:
                fd = _bccshim.attached(bpf, table).pop(fn_b, None)
                if fd is not None:  # else bcc's own cleanup already ran
                    os.close(fd)

            return Attachment(detach_adopted, via="bcc autoload")
    auto = _autoloaded(fn_name, what)
    if auto is not None:
        raise auto
    insns, license = compiled_insns(bpf, fn_name)
    obj_fd = bpfsys.btf_obj_fd(btf_object) if btf_object != "vmlinux" else 0
    try:
        prog = bpfsys.prog_load(prog_type, insns, license=license, name=fn_name,
                                expected_attach_type=attach_type, attach_btf_id=type_id,
                                attach_btf_obj_fd=obj_fd, what=f"loading {fn_name!r} for {what}")
    finally:
        if obj_fd:
            os.close(obj_fd)
    try:
        link = bpfsys.raw_tracepoint_open(prog, None, what=f"attaching {what}")
    except BaseException:
        os.close(prog)
        raise
    fds = [link, prog]

    def detach() -> None:
        while fds:  # the link first (detaches), then the program (unloads)
            os.close(fds.pop(0))

    return Attachment(detach, via="bpf_link", fd=link)
