"""User-space static tracepoints: :class:`Usdt` (``usdt:BINARY:PROVIDER:NAME``).

A USDT probe is a ``nop`` the program's authors placed in their code with a note in
``.note.stapsdt`` (:mod:`ebpfhooks.elf.usdt`) saying where it is, where its
semaphore is and where each argument lives at that point. ebpfhooks reads the notes
itself and attaches a uprobe at every location of the probe, with the semaphore's file
offset as the uprobe's ``ref_ctr_offset``: the kernel counts the semaphore up in every
process that maps the file while the probe is attached (programs such as Python only
reach their probes when it is non-zero) and back down on detach. No pid is needed.

bcc's way (``USDT(path=...).enable_probe(...)`` and ``BPF(usdt_contexts=[...])``)
attaches the probes itself at compile time; ebpfhooks keeps attaching in the
:class:`~ebpfhooks.Link`, and gives the program its arguments through C it generates
from the validated notes: :func:`usdt_args`.
"""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, SpecError
from ebpfhooks.hooks.base import Found, Hook, Pattern, Resolution, optional_text, text_field
from ebpfhooks.names import check_path, check_trace_name

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.elf.usdt import UsdtArg, UsdtProbe
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.names import Problem
    from ebpfhooks.spec import Body

__all__ = ["Usdt", "UsdtResolution", "usdt_args"]


def _provider(name: str) -> Problem | None:
    return check_trace_name(name, "USDT provider")


def _probe(name: str) -> Problem | None:
    return check_trace_name(name, "USDT probe name")


def _pid(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1 << 22:
        raise SpecError(f"pid must be a positive int (at most 4194303), got {value!r}")
    return value


class UsdtResolution(Resolution):
    """The file and every location of the probe in it (one per place it was compiled).

    ``locations`` are :class:`~ebpfhooks.elf.usdt.UsdtProbe` values: each one's
    ``file_offset`` is a uprobe, its ``semaphore_offset`` that uprobe's
    ``ref_ctr_offset`` (0: no semaphore).
    """

    __slots__ = ("locations", "path")
    _fields = ("hook", "note", "path", "locations")
    path: Path
    locations: tuple[UsdtProbe, ...]

    def __init__(self, hook: Hook, *, path: Path, locations: tuple[UsdtProbe, ...],
                 note: str | None = None) -> None:
        self._init(hook=hook, note=note, path=path, locations=locations)

    @property
    def provider(self) -> str:
        """The probe's provider, as the notes name it."""
        return self.locations[0].provider

    @property
    def name(self) -> str:
        """The probe's name."""
        return self.locations[0].name

    @property
    def semaphore(self) -> int:
        """The semaphore's virtual address (0: the probe has none)."""
        return self.locations[0].semaphore

    @property
    def semaphore_offset(self) -> int:
        """The semaphore's file offset, the uprobe's ``ref_ctr_offset`` (0: none)."""
        return self.locations[0].semaphore_offset

    def arguments(self) -> tuple[tuple[UsdtArg, ...], ...]:
        """Each location's validated arguments (:func:`~ebpfhooks.elf.usdt.parse_usdt_args`).

        Raises :class:`~ebpfhooks.NotSupportedError` naming an argument ebpfhooks cannot
        read (a symbolic or indexed operand).
        """
        from ebpfhooks.elf.usdt import parse_usdt_args
        from ebpfhooks.errors import NotSupportedError

        out = []
        for i, loc in enumerate(self.locations):
            try:
                out.append(parse_usdt_args(loc.args))
            except NotSupportedError as err:
                raise NotSupportedError(f"{self.hook}, location {i}: {err}",
                                        missing=err.missing) from None
        return tuple(out)

    @property
    def arguments_differ(self) -> bool:
        """Whether the locations' argument specs differ (then the cookie says which fired)."""
        return len({loc.args for loc in self.locations}) > 1

    def describe(self) -> str:
        locs = ", ".join(f"{loc.file_offset:#x}" for loc in self.locations)
        plural = "s" if len(self.locations) != 1 else ""
        sema = (f", semaphore at file offset {self.semaphore_offset:#x}"
                if self.semaphore_offset else "")
        return (f"{self.hook} -> {self.path} {self.provider}:{self.name} (file offset{plural} "
                f"{locs}{sema})")


class Usdt(Hook):
    """A USDT probe: ``usdt:BINARY:PROVIDER:NAME``, or ``usdt:BINARY:NAME`` (any provider).

    >>> str(Usdt("/usr/bin/python3.11", "gc__start", provider="python"))
    'usdt:/usr/bin/python3.11:python:gc__start'
    >>> str(Usdt("python3", "function__entry", pid=1234))
    'usdt:python3:function__entry[pid=1234]'

    ``binary`` is found as a uprobe's is (a path, a name on ``PATH``, a library name; with
    ``pid``, the file that process maps); with ``pid`` only that process's hits fire.
    Every location of the probe is attached (a probe in an inlined function has
    several), its semaphore counted by the kernel. The program gets ``struct pt_regs
    *ctx``; :func:`usdt_args` generates the C that reads the probe's arguments.
    Minimum kernel 4.20 for probes with a semaphore (``ref_ctr_offset``), 4.17 without.
    """

    __slots__ = ("binary", "name", "pid", "provider")
    _fields = ("binary", "provider", "name", "pid")
    binary: str
    provider: str | None
    name: str
    pid: int | None

    kind = "usdt"
    bcc_prefix = "usdt"
    aliases = ()
    libbpf = ("usdt",)
    options = ("pid",)
    example = "/usr/bin/python3:python:function__entry"
    target_noun = "USDT probe"
    target_shape = "BINARY:[PROVIDER:]NAME"
    libbpf_bare = True
    by_path = True
    hooks = "user-space static tracepoint (USDT probe)"
    fires = "when a thread passes the probe in the application"
    attach_via = ("perf_event_open on the uprobe PMU at each of the probe's locations, its "
                  "semaphore as the uprobe's ref_ctr_offset (ebpfhooks' own; bcc's USDT "
                  "context is not used)")
    bcc_entry = "USDT.enable_probe"
    stable = True
    overhead = "very low"
    min_kernel = (4, 20)
    program_type = "KPROBE"
    program_ctx = "struct pt_regs *ctx"
    feature = "uprobes"
    capabilities = caps.TRACING

    def __init__(self, binary: str, name: str, *, provider: str | None = None,
                 pid: int | None = None) -> None:
        self._init(binary=text_field(binary, check_path, "binary"),
                   provider=optional_text(provider, _provider, "USDT provider"),
                   name=text_field(name, _probe, "USDT probe name"), pid=_pid(pid))

    def _target_names(self) -> tuple[str, str]:
        return self.name, self.name

    def spec(self) -> str:
        """``usdt:BINARY:[PROVIDER:]NAME[[pid=N]]``."""
        provider = f"{self.provider}:" if self.provider else ""
        pid = f"[pid={self.pid}]" if self.pid else ""
        return f"usdt:{self.binary}:{provider}{self.name}{pid}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``binary ":" [provider ":"] name`` (``options: pid=N``); libbpf's
        ``usdt/BINARY:PROVIDER:NAME`` names the provider. The name is after the last
        ``:``, the provider after the one before (when there is one), the binary is the
        rest. In a pattern, provider and name may hold wildcards, and a wildcard in the
        binary needs an absolute path (a glob)."""
        from ebpfhooks.spec import has_wildcard

        t = body.t
        start, end = body.start, body.end
        colon = body.rfind(":")
        if colon == -1:
            raise body.error(end, end + 1, "missing ':NAME' after the binary",
                             f"expected usdt:BINARY:[PROVIDER:]NAME, e.g. usdt:{cls.example}")
        if colon + 1 >= end:
            raise body.error(colon + 1, colon + 2, "missing probe name after the binary")
        provider = None
        bin_end = colon
        before = body.rfind(":", start, colon)
        if before != -1:
            provider = t.name(before + 1, colon, _provider)
            bin_end = before
        elif body.libbpf:
            raise body.error(start, end, "libbpf's usdt/ spelling names the provider",
                             f"expected usdt/BINARY:PROVIDER:NAME, e.g. usdt/{cls.example}")
        binary = t.name(start, bin_end, check_path)
        name = t.name(colon + 1, end, _probe)
        if body.pattern:
            if has_wildcard(binary) and not binary.startswith("/"):
                raise body.error(start, bin_end, "a wildcard in the binary needs an absolute "
                                 "path", "e.g. usdt:/usr/lib/x86_64-linux-gnu/libpython*:*")
            return Pattern(cls, binary=binary, provider=provider, name=name)
        pid = body.options.get("pid")
        if pid is not None and not 0 < pid < 1 << 22:
            raise body.error(end, len(t.text), f"pid {pid} is out of range", "expected 1..4194303")
        return cls(binary, name, provider=provider, pid=pid)

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The probes of the binary's ``.note.stapsdt`` notes, once per provider and name
        (as ``bpftrace -l`` lists them); a glob binary lists every ELF file it matches."""
        import glob
        import os
        from pathlib import Path

        from ebpfhooks.elf.binary import resolve_binary
        from ebpfhooks.elf.usdt import usdt_probes
        from ebpfhooks.spec import has_wildcard, matcher

        binary = pattern["binary"]
        assert binary is not None
        if has_wildcard(binary):
            paths = [(p, Path(p)) for p in sorted(glob.glob(binary)) if os.path.isfile(p)]
        else:
            paths = [(binary, resolve_binary(binary))]
        name_ok, provider_ok = matcher(pattern["name"]), matcher(pattern["provider"])
        assert name_ok is not None
        for shown, path in paths:
            try:
                probes = usdt_probes(path)
            except EbpfHooksError:
                if len(paths) == 1:
                    raise
                continue  # a glob may catch files that are not ELF
            for p in probes:
                if (name_ok(p.name) and (provider_ok is None or provider_ok(p.provider))
                        and _provider(p.provider) is None and _probe(p.name) is None):
                    found.add(f"usdt:{shown}:{p.provider}:{p.name}", cls, shown, p.name,
                              provider=p.provider)
        found.sources[cls.kind] = "the binary's USDT notes (.note.stapsdt)"

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel has no uprobes."""
        self._require("uprobe support", "CONFIG_UPROBE_EVENTS")

    def resolve(self) -> UsdtResolution:
        """Find the file and every location of the probe in it.

        >>> Usdt("/usr/bin/python3.11", "gc__start").resolve().semaphore_offset
        ... # doctest: +SKIP
        6828654

        Raises :class:`ebpfhooks.UsdtProbeNotFoundError` (with close matches),
        :class:`ebpfhooks.AmbiguousSymbolError` (``usdt:BINARY:NAME`` with the name
        in two providers), and the binary errors of uprobes
        (:class:`ebpfhooks.BinaryNotFoundError`, :class:`ebpfhooks.LibraryNotFoundError`,
        :class:`ebpfhooks.ProcessNotFoundError`, :class:`ebpfhooks.NotAnElfError` (also
        for a damaged note) ...).
        """
        from ebpfhooks.elf.binary import resolve_binary
        from ebpfhooks.elf.usdt import usdt_probes

        path = resolve_binary(self.binary, self.pid)
        probes = usdt_probes(path)
        # a provider outside the names' alphabet is never matched (nor listed): it could
        # not be written back as a spec, nor reach generated C
        found = tuple(p for p in probes if p.name == self.name
                      and (p.provider == self.provider if self.provider is not None
                           else _provider(p.provider) is None))
        if not found:
            self._not_found(path, probes)
        providers = sorted({p.provider for p in found})
        if len(providers) > 1:
            from ebpfhooks.errors import AmbiguousSymbolError

            names = ", ".join(f"usdt:{self.binary}:{p}:{self.name}" for p in providers)
            raise AmbiguousSymbolError(
                f"USDT probe {self.name!r} is in {len(providers)} providers of {path}: "
                f"{', '.join(providers)}; name one: {names}")
        note = None
        if found[0].adjustment:
            note = (f"the file was prelinked: locations moved by {found[0].adjustment:+#x} "
                    "(.stapsdt.base)")
        return UsdtResolution(self, path=path, locations=found, note=note)

    def _not_found(self, path: Path, probes: list[UsdtProbe]) -> None:
        from ebpfhooks._util import close_matches
        from ebpfhooks.errors import UsdtProbeNotFoundError

        wanted = f"{self.provider}:{self.name}" if self.provider else self.name
        where = f"the USDT probes of {path} (.note.stapsdt)"
        if not probes:
            raise UsdtProbeNotFoundError(
                wanted, where=where,
                hint=f"{path} has no USDT probes: it was built without <sys/sdt.h> probes "
                     "(Python: --with-dtrace); `readelf -n FILE` shows a file's notes")
        pool = [p.qualified for p in probes] if self.provider else [p.name for p in probes]
        close = close_matches(wanted, pool)
        if self.provider and not close:
            close = [p.qualified for p in probes if p.name == self.name]
        by_name = {p.qualified: p for p in probes}
        specs = []
        for c in close:
            p = by_name.get(c) if self.provider else next(x for x in probes if x.name == c)
            if p is not None:
                specs.append(f"usdt:{self.binary}:{p.provider}:{p.name}")
        raise UsdtProbeNotFoundError(
            wanted, where=where, candidates=specs,
            hint=f"list them with: ebpfhooks list 'usdt:{self.binary}:*'")

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """File, provider, name, semaphore, and each location's addresses and arguments."""
        from ebpfhooks.elf.usdt import parse_usdt_arg, split_usdt_args
        from ebpfhooks.errors import NotSupportedError

        res = self.resolve()
        facts.update({"file": str(res.path), "provider": res.provider, "name": res.name,
                      "semaphore": res.semaphore or None,
                      "semaphore_offset": res.semaphore_offset or None,
                      "note": res.note, "pid": self.pid, "locations": []})
        text.append(f"    file: {res.path}")
        text.append(f"    probe: {res.provider}:{res.name}   locations: {len(res.locations)}")
        if res.semaphore:
            text.append(f"    semaphore: {res.semaphore:#x} (file offset "
                        f"{res.semaphore_offset:#x}): counted up by the kernel while "
                        "attached")
        else:
            text.append("    semaphore: none (the probe always runs its nop)")
        if res.note:
            text.append(f"    note: {res.note}")
        cookies = _use_cookies(res)
        facts["cookies"] = cookies
        for i, loc in enumerate(res.locations):
            args: list[dict[str, Any]] = []
            text.append(f"    location {i}: address {loc.vaddr:#x}   file offset "
                        f"{loc.file_offset:#x}" + (f"   (cookie {i})" if cookies else ""))
            for n, arg_text in enumerate(split_usdt_args(loc.args)):
                try:
                    arg = parse_usdt_arg(arg_text)
                except NotSupportedError as err:
                    args.append({"spec": None, "problem": str(err)})
                    text.append(f"        arg{n}: not readable: {err}")
                    continue
                args.append({"spec": arg.spec(), "size": arg.size, "signed": arg.signed,
                             "where": arg.where, "register": arg.register,
                             "offset": arg.offset})
                text.append(f"        arg{n}: {arg.spec():<16} {arg.describe()}")
            if not args:
                text.append("        no arguments")
            facts["locations"].append({"vaddr": loc.vaddr, "file_offset": loc.file_offset,
                                       "args": args})

    def c_args(self, prefix: str | None = None) -> str:
        """The C that reads this probe's arguments: :func:`usdt_args`."""
        return usdt_args(self, prefix)

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        assert isinstance(resolution, UsdtResolution)
        return _bcc.attach_usdt(
            program.bpf, program.fn_name, str(resolution.path),
            [(loc.file_offset, loc.semaphore_offset) for loc in resolution.locations],
            pid=self.pid, cookies=_use_cookies(resolution), what=str(self))


def _use_cookies(resolution: UsdtResolution) -> bool:
    """Each location's index is its cookie when the probe has several and the kernel can
    (``BPF_PERF_EVENT`` links, 5.15); one location is attached without a link."""
    if len(resolution.locations) < 2:
        return False
    from ebpfhooks.kernel.features import FeatureStatus, perf_link

    return perf_link().status is not FeatureStatus.NO


def usdt_args(hook: Usdt | str, prefix: str | None = None) -> str:
    """The C text of a reader of the probe's arguments, to put before your BPF source.

    ``PREFIX_arg(ctx, n, &val)`` stores argument ``n`` (0-based, as bpftrace's
    ``arg0``) in a ``u64``, sign-extended when the argument is signed, and returns 0
    (-1: no such argument, or its memory could not be read); ``PREFIX_NARGS`` is the
    argument count. ``prefix`` defaults to ``usdt_PROVIDER_NAME``::

        hook = ebpfhooks.from_spec("usdt:/usr/bin/python3.11:python:gc__start")
        src = ebpfhooks.usdt_args(hook) + '''
        int on_gc(struct pt_regs *ctx) {
            u64 generation = 0;
            usdt_python_gc__start_arg(ctx, 0, &generation);
            ...
        }'''
        with hook.attach(BPF(text=src), "on_gc"): ...

    The C is built from the validated notes only (sizes 1/2/4/8, registers from a fixed
    x86-64 table, integer offsets and constants; :mod:`ebpfhooks.hooks._usdt_c`).
    A probe compiled in several places whose argument specs differ gets a reader that
    switches on ``bpf_get_attach_cookie(ctx)``, the location's index, which
    :meth:`Usdt.attach` sets (kernel 5.15, ``BPF_PERF_EVENT`` links). Memory arguments
    need ``bpf_probe_read_user`` (kernel 5.5).

    >>> print(usdt_args("usdt:/usr/bin/python3.11:python:gc__start"))  # doctest: +SKIP
    /* ebpfhooks: argument reader of USDT probe python:gc__start (1 location) */
    ...

    Raises the errors of :meth:`Usdt.resolve`, :class:`ebpfhooks.SpecError` for a
    prefix that is not a C identifier, and :class:`ebpfhooks.NotSupportedError` for an
    argument it cannot read, or differing locations on a kernel without
    ``BPF_PERF_EVENT`` links.
    """
    from ebpfhooks.errors import NotSupportedError
    from ebpfhooks.hooks._usdt_c import check_prefix, reader_source

    if isinstance(hook, str):
        from ebpfhooks.hooks import parse

        parsed = parse(hook)
        if not isinstance(parsed, Usdt):
            raise SpecError(f"usdt_args() needs a usdt hook, got {parsed.kind} {parsed}",
                            hint="e.g. usdt:/usr/bin/python3:python:function__entry")
        hook = parsed
    if not isinstance(hook, Usdt):
        raise SpecError(f"usdt_args() needs a Usdt hook or a usdt: spec, got "
                        f"{type(hook).__name__} {hook!r}")
    res = hook.resolve()
    name = f"usdt_{res.provider}_{res.name}" if prefix is None else prefix
    check_prefix(name)
    locations = res.arguments()
    if len({len(a) for a in locations}) > 1:
        raise NotSupportedError(f"{hook}: its locations have different numbers of "
                                "arguments; read each with its own uprobe",
                                missing="one argument list per probe")
    cookies = res.arguments_differ
    if cookies and not _use_cookies(res):
        raise NotSupportedError(
            f"{hook}: its {len(res.locations)} locations keep their arguments in different "
            "places, and telling them apart needs a BPF cookie per location, which this "
            "kernel cannot attach (BPF_PERF_EVENT links, kernel 5.15)",
            missing="BPF_PERF_EVENT links (kernel 5.15)")
    return reader_source(name, f"{res.provider}:{res.name}", locations, cookies=cookies)
