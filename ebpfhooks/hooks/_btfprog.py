"""What the kinds loaded at a kernel BTF id share (:mod:`.fentry`, :mod:`.tpbtf`,
:mod:`.lsm`): the resolution, the trampoline check, the attach, the BTF name lists.

Such a program names its target by a type id of the kernel's BTF (a FUNC for fentry,
fexit and LSM hooks, a ``btf_trace_NAME`` TYPEDEF for tp_btf), given to
``BPF_PROG_LOAD`` as ``attach_btf_id``; ebpfhooks loads the instructions bcc compiled
itself (:func:`ebpfhooks._bcc.attach_btf_program`), so the BPF function may have any
name.
"""

from __future__ import annotations

from ebpfhooks.hooks.base import Hook, Resolution

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from collections.abc import Callable

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.base import Found
    from ebpfhooks.hooks.link import Program

__all__ = ["BtfResolution", "attach", "btf_functions", "require_trampolines"]

#: Where kernel BTF lives, for messages.
BTF_WHERE = "the kernel's BTF (/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE)"


class BtfResolution(Resolution):
    """A target found in the kernel's BTF: the ``kind`` (``"FUNC"``, ``"TYPEDEF"``) type
    ``name`` with id ``type_id`` in the BTF object ``btf`` (``"vmlinux"`` or a module).

    A program is loaded with ``type_id`` as ``attach_btf_id`` (and, for a module, that
    module's BTF object as ``attach_btf_obj_fd``).

    >>> from ebpfhooks.hooks.fentry import Fentry
    >>> BtfResolution(Fentry("vfs_read"), name="vfs_read", kind="FUNC", type_id=74153,
    ...               btf="vmlinux").describe()
    'fentry:vfs_read -> FUNC vfs_read (BTF type id 74153 in vmlinux)'
    """

    __slots__ = ("btf", "kind", "name", "type_id")
    _fields = ("hook", "note", "name", "kind", "type_id", "btf")
    name: str
    kind: str
    type_id: int
    btf: str

    def __init__(self, hook: Hook, *, name: str, kind: str, type_id: int, btf: str,
                 note: str | None = None) -> None:
        self._init(hook=hook, note=note, name=name, kind=kind, type_id=type_id, btf=btf)

    @property
    def in_module(self) -> bool:
        """True when the target is in a module's BTF."""
        return self.btf != "vmlinux"

    def describe(self) -> str:
        return f"{self.hook} -> {self.kind} {self.name} (BTF type id {self.type_id} in {self.btf})"


def _short(reason: str) -> str:
    """``features.trampolines()``'s reason without the load error's explanation of what
    trampolines are (for one-line messages)."""
    return reason.split(" although this process is privileged")[0]


def require_trampolines(hook: Hook, needs: str,
                        alternative: Callable[[], str | None] | None = None,
                        extra: str = "") -> None:
    """Raise :class:`ebpfhooks.NotSupportedError` when the kernel cannot attach BPF
    trampolines (``features.trampolines()`` says no); "could not tell" goes ahead.

    ``needs`` names the programs that need them (``"fentry and fexit programs"``);
    ``extra`` is added to the message (where else to look).
    """
    from ebpfhooks.errors import NotSupportedError
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus

    result = features.trampolines()
    if result.status is FeatureStatus.NO:
        raise NotSupportedError(
            f"{hook} cannot attach: this kernel has no BPF trampolines, which {needs} run "
            f"from ({_short(result.reason)}){extra}",
            missing="BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, a BPF JIT)",
            alternative=alternative() if alternative is not None else None,
        )


def attach(program: Program, resolution: BtfResolution, *, prog_type: int,
           attach_type: int, autoload: tuple[str, str] | None = None) -> Attachment:
    """Load ``program``'s compiled function at the resolved BTF id and attach it."""
    from ebpfhooks import _bcc

    return _bcc.attach_btf_program(
        program.bpf, program.fn_name, prog_type=prog_type, attach_type=attach_type,
        type_id=resolution.type_id, btf_object=resolution.btf, what=str(resolution.hook),
        autoload=autoload)


def btf_functions(found: Found | None = None) -> list[tuple[str | None, str]]:
    """(module or ``None`` for vmlinux, name) of every FUNC of the kernel's BTF.

    vmlinux's first, then each loaded module's (their own functions only); ``[]``
    without BTF. Read once per listing (``found.cache``).
    """
    from ebpfhooks.kernel.btf import module_btf, module_names, vmlinux_btf

    if found is not None and "btf_functions" in found.cache:
        cached: list[tuple[str | None, str]] = found.cache["btf_functions"]
        return cached
    vmlinux = vmlinux_btf()
    out: list[tuple[str | None, str]] = []
    if vmlinux is not None:
        out = [(None, name) for name in vmlinux.function_names()]
        for module in module_names():
            btf = module_btf(module)
            if btf is not None:
                out.extend((module, name) for name in btf.function_names())
    if found is not None:
        found.cache["btf_functions"] = out
    return out
