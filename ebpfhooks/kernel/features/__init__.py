"""Feature probes: can this kernel do X? Answers are yes, no or could-not-tell.

Probing is kept apart from attaching: each probe looks at files the kernel exposes
(PMUs under ``/sys/bus/event_source/devices``, tracefs, kallsyms, ``/proc/config.gz``,
the release string) and returns a :class:`Feature` saying why. Conclusive answers (YES
or NO) are cached; UNKNOWN is asked again next time. :func:`clear_cache` forgets all::

    from ebpfhooks.kernel import features
    f = features.kprobes()
    if not f:
        print(f.reason, f.fix)

Nothing here imports bcc; the probes of the raw-syscall kinds load a two-instruction
program to ask the kernel.

The probes, by subject: :mod:`~ebpfhooks.kernel.features.base` (:class:`Feature`, the
cache, the pure parsers), :mod:`~ebpfhooks.kernel.features.system` (kernel version and
config, capabilities, sysctls, lockdown, headers),
:mod:`~ebpfhooks.kernel.features.kinds` (kprobes, uprobes, raw tracepoints, BTF, XDP,
bpf_link) and :mod:`~ebpfhooks.kernel.features.rawkinds` (uprobe_multi, trampolines, the
BPF LSM, perf PMUs and links); every name is importable from here.
"""

from ebpfhooks.kernel.features.base import (
    CAPABILITY_NAMES,
    Feature,
    FeatureStatus,
    clear_cache,
    parse_capabilities,
    parse_kconfig,
    parse_kernel_release,
    parse_lsm_list,
)
from ebpfhooks.kernel.features.base import parse_lockdown as parse_lockdown
from ebpfhooks.kernel.features.kinds import BTF_VMLINUX as BTF_VMLINUX
from ebpfhooks.kernel.features.kinds import PMU_DIR as PMU_DIR
from ebpfhooks.kernel.features.kinds import (
    bpf_link,
    btf,
    features,
    kprobes,
    raw_tracepoints,
    uprobes,
    xdp,
)
from ebpfhooks.kernel.features.rawkinds import CMDLINE as CMDLINE
from ebpfhooks.kernel.features.rawkinds import LSM_FILE as LSM_FILE
from ebpfhooks.kernel.features.rawkinds import (
    bpf_lsm,
    perf_hardware,
    perf_link,
    perf_software,
    trampolines,
    uprobe_multi,
)
from ebpfhooks.kernel.features.system import CONFIG_GZ as CONFIG_GZ
from ebpfhooks.kernel.features.system import KALLSYMS as KALLSYMS
from ebpfhooks.kernel.features.system import KPTR_RESTRICT as KPTR_RESTRICT
from ebpfhooks.kernel.features.system import LOCKDOWN as LOCKDOWN
from ebpfhooks.kernel.features.system import PERF_EVENT_PARANOID as PERF_EVENT_PARANOID
from ebpfhooks.kernel.features.system import STATUS_FILE as STATUS_FILE
from ebpfhooks.kernel.features.system import UNPRIVILEGED_BPF as UNPRIVILEGED_BPF
from ebpfhooks.kernel.features.system import (
    capabilities,
    is_root,
    kernel_config,
    kernel_headers,
    kernel_version,
    kptr_restrict,
    lockdown,
    unprivileged_bpf,
)

__all__ = [
    "CAPABILITY_NAMES",
    "Feature",
    "FeatureStatus",
    "bpf_link",
    "btf",
    "capabilities",
    "clear_cache",
    "features",
    "is_root",
    "kernel_config",
    "kernel_headers",
    "kernel_version",
    "kprobes",
    "kptr_restrict",
    "lockdown",
    "parse_capabilities",
    "parse_kconfig",
    "parse_kernel_release",
    "raw_tracepoints",
    "unprivileged_bpf",
    "uprobes",
    "xdp",
]
# probes for the raw-syscall kinds (ebpfhooks.bpfsys); not in features() yet
__all__ += ["bpf_lsm", "parse_lsm_list", "perf_hardware", "perf_link", "perf_software",
            "trampolines", "uprobe_multi"]
