"""The running kernel's BTF: vmlinux's and each module's, read once, and type ids in them.

:func:`vmlinux_btf` and :func:`module_btf` read and parse (:mod:`ebpfhooks.kernel.btf.parse`)
``/sys/kernel/btf/vmlinux`` and ``/sys/kernel/btf/MODULE`` once; :func:`find_type_id`
and its shorthands (:func:`tracing_function_id`, :func:`lsm_hook_id`, :func:`tp_btf_id`)
say which BTF object defines a target and its type id (:class:`BtfId`), what a tracing
or LSM program is loaded with::

    >>> BtfId(76192, "vmlinux").in_module
    False
    >>> tracing_function_id("vfs_read")  # doctest: +SKIP
    BtfId(type_id=74153, btf='vmlinux')

Minimum kernel: 5.5 (vmlinux BTF), 5.11 (module BTF).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ebpfhooks.kernel.btf.parse import FUNC, TYPEDEF, Btf, parse_btf
from ebpfhooks.kernel.btfstrings import read_string_section as read_string_section

__all__ = ["BTF_DIR", "VMLINUX_BTF", "BtfId", "find_type_id", "lsm_hook_id", "module_btf",
           "module_names", "read_string_section", "tp_btf_id", "tracing_function_id",
           "vmlinux_btf"]

BTF_DIR = Path("/sys/kernel/btf")
VMLINUX_BTF = BTF_DIR / "vmlinux"


@lru_cache(maxsize=4)
def vmlinux_btf(path: Path = VMLINUX_BTF) -> Btf | None:
    """The running kernel's BTF, read and parsed once; ``None`` when the file is missing.

    >>> vmlinux_btf().function_signature("vfs_read")  # doctest: +SKIP
    'ssize_t vfs_read(struct file * file, char * buf, size_t count, loff_t * pos)'

    Minimum kernel: 5.5 (CONFIG_DEBUG_INFO_BTF=y). ``vmlinux_btf.cache_clear()`` forgets it.
    Raises :class:`BtfFormatError` if the file is not BTF.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return parse_btf(data)


# --------------------------------------------------------------------------- type ids of targets


class BtfId(tuple[int, str]):
    """A kernel BTF type id and the BTF object it is in: ``(type_id, btf)``.

    ``btf`` is ``"vmlinux"`` or a module's name. Loading a tracing or LSM program at it
    takes ``type_id`` as ``attach_btf_id`` and, for a module, the fd of that module's BTF
    object as ``attach_btf_obj_fd`` (:func:`ebpfhooks.bpfsys.btf_obj_fd`); for vmlinux 0.

    >>> BtfId(76192, "vmlinux").in_module
    False
    """

    __slots__ = ()

    def __new__(cls, type_id: int, btf: str) -> BtfId:
        return super().__new__(cls, (type_id, btf))

    @property
    def type_id(self) -> int:
        """The BTF type id."""
        return self[0]

    @property
    def btf(self) -> str:
        """``"vmlinux"`` or the module's name (``typing.NamedTuple`` would cost ``ebpfhooks
        list`` the import of typing)."""
        return self[1]

    def __repr__(self) -> str:
        return f"BtfId(type_id={self.type_id}, btf={self.btf!r})"

    @property
    def in_module(self) -> bool:
        """True when the type is in a module's BTF (so ``attach_btf_obj_fd`` is needed)."""
        return self.btf != "vmlinux"


def module_names(directory: Path = BTF_DIR) -> list[str]:
    """The loaded modules that have BTF (the files of ``/sys/kernel/btf`` but vmlinux), sorted.

    >>> module_names()  # doctest: +SKIP
    ['veth', 'xfs']

    Minimum kernel: 5.11 (CONFIG_DEBUG_INFO_BTF_MODULES=y). ``[]`` when there are none.
    """
    try:
        return sorted(p.name for p in Path(directory).iterdir()
                      if p.name != "vmlinux" and p.is_file())
    except OSError:
        return []


@lru_cache(maxsize=64)
def module_btf(module: str, directory: Path = BTF_DIR) -> Btf | None:
    """A loaded module's BTF (``/sys/kernel/btf/MODULE``), split on vmlinux's; cached.

    ``None`` when the module is not loaded, has no BTF, or vmlinux has none. Its type ids
    continue after vmlinux's, exactly as the kernel numbers them, so an id found here is
    the ``attach_btf_id`` to load with (plus the module BTF's fd, see :class:`BtfId`).

    >>> module_btf("veth").type_id("veth_xmit", "func") > len(vmlinux_btf())  # doctest: +SKIP
    True

    Minimum kernel: 5.11. Raises :class:`BtfFormatError` if a file is not (split) BTF.
    """
    if not module or "/" in module or module.startswith("."):
        return None
    base = vmlinux_btf(Path(directory) / "vmlinux")
    if base is None:
        return None
    try:
        data = (Path(directory) / module).read_bytes()
    except OSError:
        return None
    return parse_btf(data, base)


def find_type_id(name: str, kind: int | str, module: str | None = None, *,
                 directory: Path = BTF_DIR) -> BtfId | None:
    """Where the kernel's BTF defines type ``name`` of ``kind``: a :class:`BtfId`, or None.

    ``module`` ``None`` looks in vmlinux first, then in every loaded module's BTF (in
    name order), as libbpf does for fentry targets; ``"vmlinux"`` or a module name looks
    only there.

    >>> find_type_id("do_sys_openat2", "func")  # doctest: +SKIP
    BtfId(type_id=76192, btf='vmlinux')

    Raises :class:`BtfFormatError` for an unknown kind name or malformed BTF.
    """
    directory = Path(directory)
    if module is None or module == "vmlinux":
        vmlinux = vmlinux_btf(directory / "vmlinux")
        found = vmlinux.type_id(name, kind) if vmlinux is not None else None
        if found is not None:
            return BtfId(found, "vmlinux")
        if module == "vmlinux":
            return None
    for mod in ([module] if module is not None else module_names(directory)):
        btf = module_btf(mod, directory)
        found = btf.type_id(name, kind) if btf is not None else None
        if found is not None:
            return BtfId(found, mod)
    return None


def tracing_function_id(function: str, module: str | None = None, *,
                        directory: Path = BTF_DIR) -> BtfId | None:
    """The BTF FUNC a fentry/fexit (or fmod_ret) program on ``function`` attaches to.

    >>> tracing_function_id("vfs_read")  # doctest: +SKIP
    BtfId(type_id=74153, btf='vmlinux')

    Minimum kernel: 5.5 (fentry/fexit), 5.11 (functions of modules).
    """
    return find_type_id(function, FUNC, module, directory=directory)


def lsm_hook_id(hook: str, *, directory: Path = BTF_DIR) -> BtfId | None:
    """The BTF FUNC ``bpf_lsm_HOOK`` an LSM program on ``hook`` (e.g. ``file_open``) uses.

    LSM hooks are only in vmlinux.

    >>> lsm_hook_id("file_open")  # doctest: +SKIP
    BtfId(type_id=30880, btf='vmlinux')

    Minimum kernel: 5.7 (CONFIG_BPF_LSM).
    """
    return find_type_id("bpf_lsm_" + hook, FUNC, "vmlinux", directory=directory)


def tp_btf_id(tracepoint: str, module: str | None = None, *,
              directory: Path = BTF_DIR) -> BtfId | None:
    """The BTF TYPEDEF ``btf_trace_NAME`` a tp_btf program on raw tracepoint ``NAME`` uses.

    >>> tp_btf_id("sched_process_exec")  # doctest: +SKIP
    BtfId(type_id=41530, btf='vmlinux')

    Minimum kernel: 5.5 (tp_btf), 5.11 (tracepoints of modules).
    """
    return find_type_id("btf_trace_" + tracepoint, TYPEDEF, module, directory=directory)
