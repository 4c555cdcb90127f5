"""A small, pure parser of the kernel's BTF type information (``/sys/kernel/btf/vmlinux``).

Enough of BTF to print a kernel function's C signature, as ``bpftrace -lv`` does for
``kfunc:`` probes::

    >>> btf = vmlinux_btf()  # doctest: +SKIP
    >>> btf.function_signature("do_sys_openat2")  # doctest: +SKIP
    'long do_sys_openat2(int dfd, const char * filename, struct open_how * how)'

The format (``include/uapi/linux/btf.h``): a 24-byte header (magic ``0xeB9F``, version 1,
flags, header length, then offset and length of the type and string sections, both
relative to the end of the header), a type section of variable-length records (type ids
count from 1; 0 is ``void``) and a section of NUL-terminated strings. Either byte order
is accepted (the magic tells which). Malformed bytes raise :class:`BtfFormatError`,
never another exception.

Minimum kernel: 5.5 for ``/sys/kernel/btf/vmlinux`` (CONFIG_DEBUG_INFO_BTF=y).

The package's modules: :mod:`~ebpfhooks.kernel.btf.parse` (the pure parser, :class:`Btf`)
and :mod:`~ebpfhooks.kernel.btf.lookup` (vmlinux's and the modules' BTF, type ids of
targets); every name is importable from ``ebpfhooks.kernel.btf``.
"""

from ebpfhooks.kernel.btf.lookup import (
    BTF_DIR,
    VMLINUX_BTF,
    BtfId,
    find_type_id,
    lsm_hook_id,
    module_btf,
    module_names,
    read_string_section,
    tp_btf_id,
    tracing_function_id,
    vmlinux_btf,
)
from ebpfhooks.kernel.btf.parse import ARRAY as ARRAY
from ebpfhooks.kernel.btf.parse import CONST as CONST
from ebpfhooks.kernel.btf.parse import DATASEC as DATASEC
from ebpfhooks.kernel.btf.parse import DECL_TAG as DECL_TAG
from ebpfhooks.kernel.btf.parse import ENUM as ENUM
from ebpfhooks.kernel.btf.parse import ENUM64 as ENUM64
from ebpfhooks.kernel.btf.parse import FLOAT as FLOAT
from ebpfhooks.kernel.btf.parse import FUNC as FUNC
from ebpfhooks.kernel.btf.parse import FUNC_PROTO as FUNC_PROTO
from ebpfhooks.kernel.btf.parse import FWD as FWD
from ebpfhooks.kernel.btf.parse import HEADER as HEADER
from ebpfhooks.kernel.btf.parse import INT as INT
from ebpfhooks.kernel.btf.parse import (
    KIND_NAMES,
    Btf,
    parse_btf,
    raw_tracepoint_names,
    string_section,
)
from ebpfhooks.kernel.btf.parse import MAGIC as MAGIC
from ebpfhooks.kernel.btf.parse import PTR as PTR
from ebpfhooks.kernel.btf.parse import RESTRICT as RESTRICT
from ebpfhooks.kernel.btf.parse import STRUCT as STRUCT
from ebpfhooks.kernel.btf.parse import TYPE_TAG as TYPE_TAG
from ebpfhooks.kernel.btf.parse import TYPEDEF as TYPEDEF
from ebpfhooks.kernel.btf.parse import UNION as UNION
from ebpfhooks.kernel.btf.parse import VAR as VAR
from ebpfhooks.kernel.btf.parse import VOLATILE as VOLATILE

__all__ = ["BTF_DIR", "KIND_NAMES", "VMLINUX_BTF", "Btf", "BtfId", "find_type_id", "lsm_hook_id",
           "module_btf", "module_names", "parse_btf", "raw_tracepoint_names",
           "read_string_section", "string_section", "tp_btf_id", "tracing_function_id",
           "vmlinux_btf"]
