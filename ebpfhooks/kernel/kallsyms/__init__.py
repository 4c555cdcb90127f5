"""The kernel symbol table (``/proc/kallsyms``): parse it once, index it, answer lookups.

:func:`parse_kallsyms` is the pure, readable parser (one :class:`KSym` per line);
:class:`Kallsyms` is the compact index built from the whole file (parallel arrays and a
``name -> row`` dict, no per-symbol objects until asked); :func:`read` reads the live
file once per process and :func:`index` indexes it once::

    from ebpfhooks.kernel.kallsyms import index
    table = index()
    "do_sys_openat2" in table                  # True
    table.variants("calibrate_delay")          # ['calibrate_delay.cold']
    table.syscall_prefix()                     # '__x64_sys_' on x86-64

Reading the file is about 45 ms of kernel time for ~120k lines; indexing it here takes
about as long again, so listings filter the bytes instead (:func:`functions`,
:func:`traceiters`, :func:`select`). As non-root (or with ``kernel.kptr_restrict``)
every address reads as 0: :attr:`Kallsyms.addresses_hidden` is then true and no address
is presented as real.

The package's modules: :mod:`~ebpfhooks.kernel.kallsyms.parse` (:class:`KSym`, the pure
parser), :mod:`~ebpfhooks.kernel.kallsyms.table` (the :class:`Kallsyms` index) and
:mod:`~ebpfhooks.kernel.kallsyms.readers` (the cached readers and the byte filters);
every name is importable from ``ebpfhooks.kernel.kallsyms``.
"""

from ebpfhooks.errors import KallsymsFormatError
from ebpfhooks.kernel.kallsyms.parse import FUNCTION_TYPES as FUNCTION_TYPES
from ebpfhooks.kernel.kallsyms.parse import (
    KALLSYMS_FILE,
    KSym,
    parse_kallsyms,
    strip_variant_suffix,
)
from ebpfhooks.kernel.kallsyms.readers import (
    clear_cache,
    functions,
    index,
    read,
    select,
    traceiters,
)
from ebpfhooks.kernel.kallsyms.table import Kallsyms

__all__ = [
    "KALLSYMS_FILE",
    "KSym",
    "Kallsyms",
    "KallsymsFormatError",
    "clear_cache",
    "functions",
    "index",
    "parse_kallsyms",
    "read",
    "select",
    "strip_variant_suffix",
    "traceiters",
]
