"""BPF LSM programs on the kernel's security hooks: :class:`Lsm` (libbpf ``lsm/HOOK``,
bcc ``LSM_PROBE``)."""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.errors import HookNotFoundError
from ebpfhooks.hooks._btfprog import BtfResolution
from ebpfhooks.hooks.base import Found, Hook, Pattern, text_field
from ebpfhooks.names import Problem, check_trace_name

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.base import Resolution
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["NOT_HOOKS", "Lsm", "lsm_hooks"]

#: ``bpf_lsm_*`` functions of kernel/bpf/bpf_lsm.c that are the BPF LSM's own helpers,
#: not hooks (the kernel refuses LSM programs on them).
NOT_HOOKS = frozenset({"verify_prog", "func_proto", "is_sleepable_hook", "find_cgroup_shim",
                       "is_trusted", "get_retval_range", "has_d_inode_locked",
                       "hook_returns_errno", "init"})

_WHERE = "the BPF LSM hooks of the kernel's BTF (bpf_lsm_* FUNCs in /sys/kernel/btf/vmlinux)"


def _hook(name: str) -> Problem | None:
    return check_trace_name(name, "LSM hook name")


class Lsm(Hook):
    """A BPF LSM program on a security hook: ``lsm:HOOK`` (libbpf ``lsm/HOOK``).

    >>> str(Lsm("file_open")), str(Lsm.from_spec("lsm/file_open"))
    ('lsm:file_open', 'lsm:file_open')

    The program runs at the kernel's security check ``security_HOOK`` (through the
    BPF LSM's ``bpf_lsm_HOOK``) with the hook's arguments (``u64 *ctx``, or bcc's
    ``BPF_PROG(on_open, struct file *file)``; ``LSM_PROBE(file_open, ...)`` is bcc's
    own naming) and may refuse the operation: return 0 to allow, a negative errno
    (``-EPERM``) to deny. Needs the BPF LSM active (``bpf`` in the kernel's LSM order:
    CONFIG_BPF_LSM and ``lsm=...,bpf``) and BPF trampolines. Minimum kernel 5.7.
    """

    __slots__ = ("hook",)
    _fields = ("hook",)
    hook: str

    kind = "lsm"
    bcc_prefix = "lsm"
    example = "file_open"
    target_noun = "LSM hook"
    target_shape = "HOOK"
    hooks = "LSM security hook"
    fires = "at the kernel's security check; a negative return value denies the operation"
    attach_via = ("BPF_PROG_LOAD of bcc's compiled function (LSM, BPF_LSM_MAC, "
                  "attach_btf_id of bpf_lsm_HOOK) + BPF_RAW_TRACEPOINT_OPEN")
    bcc_entry = "attach_lsm"
    stable = False
    overhead = "very low"
    min_kernel = (5, 7)
    program_type = "LSM"
    program_ctx = "u64 *ctx"
    feature = "bpf_lsm"
    capabilities = caps.TRACING

    def __init__(self, hook: str) -> None:
        self._init(hook=text_field(hook, _hook, "LSM hook name"))

    def _target_names(self) -> tuple[str, str]:
        return self.hook, self.hook

    def spec(self) -> str:
        """``lsm:HOOK``."""
        return f"lsm:{self.hook}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``hook``: the LSM hook's name, as ``security_HOOK`` without ``security_``
        (``file_open``, ``bprm_check_security``); hooks are only in vmlinux."""
        colon = body.find(":")
        if colon != -1:
            raise body.error(colon, colon + 1, "an LSM hook takes no module or category",
                             "write lsm:HOOK, e.g. lsm:file_open")
        name = body.t.name(body.start, body.end, _hook)
        if body.pattern:
            return Pattern(cls, hook=name)
        return cls(name)

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The ``bpf_lsm_*`` functions of vmlinux's BTF, less the BPF LSM's own helpers;
        on a kernel that cannot attach LSM programs (no BPF LSM, or no trampolines),
        nothing unless ``include_unsupported`` (a note says why)."""
        from ebpfhooks.spec import matcher

        ok = matcher(pattern["hook"])
        assert ok is not None
        found.sources[cls.kind] = "/sys/kernel/btf/vmlinux (bpf_lsm_* FUNC types)"
        problem = _unsupported()
        if problem is not None:
            if not found.include_unsupported:
                found.note(f"lsm hooks not listed: {problem}; `ebpfhooks list --all` "
                           "(include_unsupported=True) lists them")
                found.sources[cls.kind] = "none (LSM programs not supported)"
                return
            found.sources[cls.kind] += ", listed although " + problem
        for name in lsm_hooks(found):
            if ok(name):
                found.add(f"lsm:{name}", cls, name)

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` saying which is missing: an active BPF LSM
        (``features.bpf_lsm()``) or BPF trampolines (``features.trampolines()``)."""
        from ebpfhooks.hooks._btfprog import require_trampolines

        self._require("active BPF LSM (bpf is not in its LSM order)",
                      "the BPF LSM (CONFIG_BPF_LSM=y and bpf in the lsm= order)")
        require_trampolines(self, "LSM programs", None,
                            "; the BPF LSM itself is active")

    def resolve(self) -> BtfResolution:
        """Find ``bpf_lsm_HOOK`` in vmlinux's BTF: its type id is what the program is
        loaded with.

        >>> Lsm("file_open").resolve()                   # doctest: +SKIP
        BtfResolution(... name='bpf_lsm_file_open', kind='FUNC', ...)

        Raises :class:`HookNotFoundError` with the closest hooks (and for the BPF LSM's
        own helpers, which are not hooks).
        """
        from ebpfhooks._util import close_matches
        from ebpfhooks.kernel.btf import lsm_hook_id

        found = None if self.hook in NOT_HOOKS else lsm_hook_id(self.hook)
        if found is None:
            hooks = lsm_hooks()
            hint = "list them with: ebpfhooks list --all 'lsm:*PART*'"
            if self.hook in NOT_HOOKS:
                hint = f"bpf_lsm_{self.hook} is a helper of the BPF LSM, not a hook"
            elif not hooks:
                hint = ("the kernel's BTF has no bpf_lsm_* functions: it is built without "
                        "CONFIG_BPF_LSM (or publishes no BTF)")
            raise HookNotFoundError(
                f"lsm:{self.hook}", where=_WHERE,
                candidates=[f"lsm:{c}" for c in close_matches(self.hook, hooks)],
                hint=hint)
        return BtfResolution(self, name=f"bpf_lsm_{self.hook}", kind="FUNC",
                             type_id=found.type_id, btf=found.btf)

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Its BTF FUNC, the hook's C signature, how the program reads each argument
        (``ctx[i]``) and what its return value does."""
        from ebpfhooks.hooks.fentry import fentry_arguments

        res = self.resolve()
        facts["btf"] = {"name": res.name, "type_id": res.type_id, "object": res.btf}
        text.append(f"    BTF: FUNC {res.name}, type id {res.type_id} in {res.btf}")
        args = fentry_arguments(res)
        if args is None:
            facts["btf_signature"] = facts["args"] = None
            text.append("    signature: unknown")
            return
        sig, params, ret = args
        facts["btf_signature"] = sig
        facts["args"] = [{"index": i, "type": t, "name": n, "read": f"ctx[{i}]"}
                         for i, (t, n) in enumerate(params)]
        text.append(f"    signature: {sig}")
        text.append("    the program: int fn(u64 *ctx), or bcc's BPF_PROG(fn, ...) naming "
                    "the arguments below")
        text.extend(f"        ctx[{i}]: {t} {n}".rstrip() for i, (t, n) in enumerate(params))
        declared = ", ".join(f"{t} {n}".rstrip() for t, n in params)
        facts["bpf_prog"] = f"BPF_PROG(on_{self.hook}, {declared})" if declared else \
            f"BPF_PROG(on_{self.hook})"
        text.append(f"    e.g.: {facts['bpf_prog']}")
        enforces = ret != "void"
        facts["enforces"] = enforces
        text.append("    return value: 0 allows, a negative errno (-EPERM) denies" if enforces
                    else "    return value: ignored (a void hook: it observes, cannot deny)")

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import bpfsys
        from ebpfhooks.hooks import _btfprog

        assert isinstance(resolution, BtfResolution)
        return _btfprog.attach(program, resolution, prog_type=bpfsys.BPF_PROG_TYPE_LSM,
                               attach_type=bpfsys.BPF_LSM_MAC,
                               autoload=("lsm", f"lsm__{self.hook}"))


def lsm_hooks(found: Found | None = None) -> list[str]:
    """The LSM hooks of the running kernel (``bpf_lsm_*`` FUNCs of vmlinux's BTF, less
    :data:`NOT_HOOKS`), in BTF order; ``[]`` without BTF or BPF LSM."""
    from ebpfhooks.hooks._btfprog import btf_functions

    return [name[len("bpf_lsm_"):] for mod, name in btf_functions(found)
            if mod is None and name.startswith("bpf_lsm_")
            and name[len("bpf_lsm_"):] not in NOT_HOOKS]


def _unsupported() -> str | None:
    """Why this kernel cannot attach LSM programs, or ``None`` (also when it cannot tell)."""
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus

    if features.bpf_lsm().status is FeatureStatus.NO:
        return "this kernel has no active BPF LSM"
    if features.trampolines().status is FeatureStatus.NO:
        return "this kernel cannot attach BPF trampolines, which LSM programs run from"
    return None

