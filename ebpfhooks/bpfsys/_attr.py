"""The uapi numbers and layouts bpfsys uses, written out as ctypes structures.

The ``enum bpf_cmd``, ``enum bpf_prog_type`` and ``enum bpf_attach_type`` values used,
their names for messages, and each ``bpf_attr`` variant (and ``perf_event_attr``) as an
explicit ctypes structure whose layout is written next to it (checked against the
kernel's ``include/uapi/linux/bpf.h``; tests/test_bpfsys.py compares it with the
installed uapi header where the header has the field)::

    >>> ctypes.sizeof(LinkCreateAttr), LinkCreateAttr.u.offset
    (64, 16)

No system call here: :mod:`ebpfhooks.bpfsys.bpf` and :mod:`ebpfhooks.bpfsys.perf` make them.
"""

from __future__ import annotations

import ctypes

__all__ = [
    "ATTACH_TYPE_NAMES",
    "BPF_BTF_GET_FD_BY_ID",
    "BPF_BTF_GET_NEXT_ID",
    "BPF_F_UPROBE_MULTI_RETURN",
    "BPF_LINK_CREATE",
    "BPF_LSM_MAC",
    "BPF_MODIFY_RETURN",
    "BPF_OBJ_GET_INFO_BY_FD",
    "BPF_PERF_EVENT",
    "BPF_PROG_LOAD",
    "BPF_PROG_TYPE_KPROBE",
    "BPF_PROG_TYPE_LSM",
    "BPF_PROG_TYPE_PERF_EVENT",
    "BPF_PROG_TYPE_RAW_TRACEPOINT",
    "BPF_PROG_TYPE_SOCKET_FILTER",
    "BPF_PROG_TYPE_TRACEPOINT",
    "BPF_PROG_TYPE_TRACING",
    "BPF_PROG_TYPE_XDP",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_TRACE_FENTRY",
    "BPF_TRACE_FEXIT",
    "BPF_TRACE_KPROBE_MULTI",
    "BPF_TRACE_RAW_TP",
    "BPF_TRACE_UPROBE_MULTI",
    "BPF_XDP",
    "ENOTSUPP",
    "PROG_TYPE_NAMES",
    "TRAMPOLINE_ATTACH_TYPES",
    "BtfInfo",
    "LinkCreateAttr",
    "PerfEventAttr",
    "ProgLoadAttr",
    "RawTracepointOpenAttr",
]

# --------------------------------------------------------------------------- numbers

# enum bpf_cmd (include/uapi/linux/bpf.h): the commands used here
BPF_PROG_LOAD = 5
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_BTF_GET_FD_BY_ID = 19
BPF_BTF_GET_NEXT_ID = 23
BPF_LINK_CREATE = 28

# enum bpf_prog_type
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_XDP = 6
BPF_PROG_TYPE_PERF_EVENT = 7
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_LSM = 29

# enum bpf_attach_type
BPF_TRACE_RAW_TP = 23  # tp_btf
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BPF_MODIFY_RETURN = 26
BPF_LSM_MAC = 27
BPF_XDP = 37  # XDP links need kernel 5.9
BPF_PERF_EVENT = 41  # a BPF program on a perf event as a bpf_link (bpf_cookie), 5.15
BPF_TRACE_KPROBE_MULTI = 42
BPF_TRACE_UPROBE_MULTI = 48  # 6.6

#: ``link_create.uprobe_multi.flags``: the uprobes are return probes.
BPF_F_UPROBE_MULTI_RETURN = 1

#: Kernel-internal "not supported" errno that reaches user space from bpf(2).
ENOTSUPP = 524

#: Names for messages.
PROG_TYPE_NAMES = {
    BPF_PROG_TYPE_SOCKET_FILTER: "SOCKET_FILTER", BPF_PROG_TYPE_KPROBE: "KPROBE",
    BPF_PROG_TYPE_TRACEPOINT: "TRACEPOINT", BPF_PROG_TYPE_XDP: "XDP",
    BPF_PROG_TYPE_PERF_EVENT: "PERF_EVENT", BPF_PROG_TYPE_RAW_TRACEPOINT: "RAW_TRACEPOINT",
    BPF_PROG_TYPE_TRACING: "TRACING", BPF_PROG_TYPE_LSM: "LSM",
}
ATTACH_TYPE_NAMES = {
    BPF_TRACE_RAW_TP: "BPF_TRACE_RAW_TP (tp_btf)", BPF_TRACE_FENTRY: "BPF_TRACE_FENTRY",
    BPF_TRACE_FEXIT: "BPF_TRACE_FEXIT", BPF_MODIFY_RETURN: "BPF_MODIFY_RETURN",
    BPF_LSM_MAC: "BPF_LSM_MAC", BPF_XDP: "BPF_XDP", BPF_PERF_EVENT: "BPF_PERF_EVENT",
    BPF_TRACE_KPROBE_MULTI: "BPF_TRACE_KPROBE_MULTI",
    BPF_TRACE_UPROBE_MULTI: "BPF_TRACE_UPROBE_MULTI",
}
#: Attach types whose programs run from a BPF trampoline (the kernel makes one per
#: target function; it needs CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and a JIT).
TRAMPOLINE_ATTACH_TYPES = frozenset({BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_MODIFY_RETURN,
                                     BPF_LSM_MAC})

# --------------------------------------------------------------------------- bpf_attr variants
# Offsets are those of the kernel's union bpf_attr (include/uapi/linux/bpf.h, x86_64 and
# every other Linux ABI: __aligned_u64 is 8-aligned, the union is aligned(8)). A size
# smaller than the kernel's bpf_attr is fine (the rest reads as zero); a larger one is
# accepted as long as the bytes the kernel does not know are zero (E2BIG otherwise).

_u8, _u16, _u32, _s32, _u64 = (ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32,
                               ctypes.c_int32, ctypes.c_uint64)


class ProgLoadAttr(ctypes.Structure):
    """``bpf_attr`` for ``BPF_PROG_LOAD``, up to ``fd_array`` (128 bytes).

    prog_type@0 insn_cnt@4 insns@8 license@16 log_level@24 log_size@28 log_buf@32
    kern_version@40 prog_flags@44 prog_name[16]@48 prog_ifindex@64
    expected_attach_type@68 (4.17) prog_btf_fd@72 func_info_rec_size@76 func_info@80
    func_info_cnt@88 line_info_rec_size@92 line_info@96 line_info_cnt@104
    attach_btf_id@108 (5.5) attach_btf_obj_fd@112 (union with attach_prog_fd; a module
    BTF's fd since 5.11) core_relo_cnt@116 fd_array@120. Later fields (core_relos@128,
    core_relo_rec_size@136, log_true_size@140 (6.4), prog_token_fd@144 (6.9)) are not set.
    """

    _fields_ = [
        ("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
        ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64), ("kern_version", _u32),
        ("prog_flags", _u32), ("prog_name", ctypes.c_char * 16), ("prog_ifindex", _u32),
        ("expected_attach_type", _u32), ("prog_btf_fd", _u32), ("func_info_rec_size", _u32),
        ("func_info", _u64), ("func_info_cnt", _u32), ("line_info_rec_size", _u32),
        ("line_info", _u64), ("line_info_cnt", _u32), ("attach_btf_id", _u32),
        ("attach_btf_obj_fd", _u32), ("core_relo_cnt", _u32), ("fd_array", _u64),
    ]


class RawTracepointOpenAttr(ctypes.Structure):
    """``bpf_attr.raw_tracepoint`` for ``BPF_RAW_TRACEPOINT_OPEN`` (16 bytes).

    name@0 (a ``char *``; 0 for tracing programs, which carry their target in
    ``attach_btf_id``) prog_fd@8, 4 bytes of padding; cookie@16 (6.10) is not set.
    """

    _fields_ = [("name", _u64), ("prog_fd", _u32), ("_pad", _u32)]


class _UprobeMulti(ctypes.Structure):
    """``link_create.uprobe_multi`` (6.6): path@16 offsets@24 ref_ctr_offsets@32
    cookies@40 cnt@48 flags@52 pid@56 (offsets within bpf_attr; 48 bytes with the pad)."""

    _fields_ = [("path", _u64), ("offsets", _u64), ("ref_ctr_offsets", _u64),
                ("cookies", _u64), ("cnt", _u32), ("flags", _u32), ("pid", _u32),
                ("_pad", _u32)]


class _PerfEventLink(ctypes.Structure):
    """``link_create.perf_event`` (5.15): bpf_cookie@16."""

    _fields_ = [("bpf_cookie", _u64)]


class _TracingLink(ctypes.Structure):
    """``link_create.tracing`` (5.19 cookie): target_btf_id@16, pad, cookie@24."""

    _fields_ = [("target_btf_id", _u32), ("_pad", _u32), ("cookie", _u64)]


class _LinkCreateTail(ctypes.Union):
    _fields_ = [("target_btf_id", _u32), ("perf_event", _PerfEventLink),
                ("tracing", _TracingLink), ("uprobe_multi", _UprobeMulti)]


class LinkCreateAttr(ctypes.Structure):
    """``bpf_attr.link_create`` for ``BPF_LINK_CREATE`` (64 bytes).

    prog_fd@0 target_fd@4 (union with target_ifindex) attach_type@8 flags@12, then a
    union at 16: target_btf_id, perf_event.bpf_cookie, tracing.{target_btf_id, cookie},
    uprobe_multi.{path, offsets, ref_ctr_offsets, cookies, cnt, flags, pid} (the
    largest, 16..60). Kernels before 6.6 know link_create only up to
    ``kprobe_multi.cookies`` (ends at 48) and refuse non-zero bytes past it with EINVAL.
    """

    _fields_ = [("prog_fd", _u32), ("target_fd", _u32), ("attach_type", _u32),
                ("flags", _u32), ("u", _LinkCreateTail)]


class _IdAttr(ctypes.Structure):
    """``BPF_*_GET_NEXT_ID`` / ``BPF_*_GET_FD_BY_ID``: start_id (or btf_id)@0 next_id@4
    open_flags@8 (12 bytes)."""

    _fields_ = [("id", _u32), ("next_id", _u32), ("open_flags", _u32)]


class _InfoAttr(ctypes.Structure):
    """``bpf_attr.info`` for ``BPF_OBJ_GET_INFO_BY_FD``: bpf_fd@0 info_len@4 info@8."""

    _fields_ = [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)]


class BtfInfo(ctypes.Structure):
    """``struct bpf_btf_info`` (32 bytes): btf@0 btf_size@8 id@12 name@16 (5.11)
    name_len@24 kernel_btf@28 (5.11)."""

    _fields_ = [("btf", _u64), ("btf_size", _u32), ("id", _u32), ("name", _u64),
                ("name_len", _u32), ("kernel_btf", _u32)]


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``PERF_ATTR_SIZE_VER5`` (112 bytes).

    type@0 size@4 config@8 sample_period@16 sample_type@24 read_format@32 the bit
    field word@40 (``flags`` here: disabled is bit 0) wakeup_events@48 bp_type@52
    config1@56 (a uprobe's path pointer) config2@64 (its file offset)
    branch_sample_type@72 sample_regs_user@80 sample_stack_user@88 clockid@92
    sample_regs_intr@96 aux_watermark@104 sample_max_stack@108.
    """

    _fields_ = [("type", _u32), ("size", _u32), ("config", _u64), ("sample_period", _u64),
                ("sample_type", _u64), ("read_format", _u64), ("flags", _u64),
                ("wakeup_events", _u32), ("bp_type", _u32), ("config1", _u64),
                ("config2", _u64), ("branch_sample_type", _u64), ("sample_regs_user", _u64),
                ("sample_stack_user", _u32), ("clockid", _s32), ("sample_regs_intr", _u64),
                ("aux_watermark", _u32), ("sample_max_stack", _u16), ("_reserved_2", _u16)]
