"""Facts read from the running kernel: tracefs, kallsyms, feature probes, network devices.

Each module pairs pure parsers (tested on fixture text) with thin, cached readers of the
live files. Importing a module here reads nothing; the first call does::

    from ebpfhooks.kernel import kallsyms, tracefs
    kallsyms.kallsyms().lookup("do_sys_openat2")
    tracefs.read_format("sched", "sched_switch").fields

Nothing here imports bcc.
"""

from __future__ import annotations

__all__: list[str] = []
