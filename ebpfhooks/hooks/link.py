"""Owning attachments: :class:`Program` (what is attached), :class:`Link` (one attachment)
and :class:`LinkGroup` (several, detached together).

A link owns what the adapter made (:class:`ebpfhooks._bcc.Attachment`): it detaches it on
``detach()``, at the end of a ``with`` block and at interpreter exit (after SIGTERM and
SIGHUP too), and it records and forgets what must outlive a crash to be found by
``ebpfhooks cleanup`` (a netlink XDP attach). A forked child owns none of its parent's
links.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

import attrs

from ebpfhooks.errors import ProgramError
from ebpfhooks.hooks.base import Hook, Resolution

if TYPE_CHECKING:
    from ebpfhooks._bcc import Attachment

__all__ = ["Link", "LinkGroup", "Program", "check_and_resolve", "check_fn_name",
           "choose_function", "is_bcc_module"]

_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_fn_name(value: object) -> str:
    """Return ``value`` if it can name a BPF function (a C identifier), else raise.

    >>> check_fn_name("on_open")
    'on_open'

    Raises :class:`ebpfhooks.ProgramError` naming the value.
    """
    if not isinstance(value, str) or not _C_IDENT.match(value):
        raise ProgramError(
            f"program function name {value!r} is not a C identifier; "
            "pass the name of a function defined in the BPF source, "
            "e.g. Program(bpf, 'on_open')"
        )
    return value


def is_bcc_module(obj: object) -> bool:
    """True for a compiled bcc ``BPF`` module (or a stand-in with its loading interface)."""
    return callable(getattr(obj, "load_func", None)) and isinstance(getattr(obj, "funcs", None),
                                                                    dict)


def _not_a_program(obj: object, where: str) -> ProgramError:
    from ebpfhooks.errors import ProgramTypeError

    shown = repr(obj)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    msg = (f"{where} needs a compiled bcc module or an ebpfhooks.Program, got "
           f"{type(obj).__name__} {shown}")
    if isinstance(obj, (str, bytes)):
        msg += ("; a C source is compiled by bcc first: prog = BPF(text=SOURCE), then "
                "hook.attach(prog, fn_name='on_event')")
    else:
        msg += ("; accepted: a bcc BPF object (from bcc import BPF; prog = BPF(text=SOURCE)) "
                "with fn_name, or ebpfhooks.Program(prog, 'on_event')")
    return ProgramTypeError(msg)


@attrs.frozen
class Program:
    """A function in a compiled bcc ``BPF`` module, ready to attach.

    >>> from bcc import BPF                                  # doctest: +SKIP
    >>> prog = Program(BPF(text=SOURCE), "on_open")          # doctest: +SKIP

    ``fn_name`` must be a C identifier; whether the module defines it is checked
    when the program is attached (:class:`ebpfhooks.ProgramError` lists the
    functions it does define). The ``BPF`` object stays the caller's: close it
    with ``bpf.cleanup()`` (or use it as a context manager) when done.

    Raises :class:`ebpfhooks.ProgramTypeError` (a ``ProgramError`` and a ``TypeError``)
    when ``bpf`` is not a bcc module (``None``, a C source string...).
    """

    bpf: Any = attrs.field(eq=False)
    fn_name: str = attrs.field()

    @bpf.validator
    def _check_bpf(self, _attr: attrs.Attribute[Any], value: object) -> None:
        if not is_bcc_module(value):
            raise _not_a_program(value, "Program(bpf, fn_name)")

    @fn_name.validator
    def _check_fn_name(self, _attr: attrs.Attribute[str], value: str) -> None:
        check_fn_name(value)

    @classmethod
    def coerce(cls, prog: Program | Any, fn_name: str | None,
               hook: Hook | None = None) -> Program:
        """Accept a :class:`Program`, or a bcc ``BPF`` object with ``fn_name``, or (given
        the ``hook``) without it: :func:`choose_function` picks the function."""
        if isinstance(prog, Program):
            if fn_name is not None and fn_name != prog.fn_name:
                raise ProgramError(
                    f"fn_name={fn_name!r} given with Program(..., {prog.fn_name!r}); "
                    "pass one or the other"
                )
            return prog
        if not is_bcc_module(prog):
            raise _not_a_program(prog, "attach()")
        if fn_name is None:
            if hook is None:
                raise ProgramError(
                    "attach() got a BPF object without fn_name; "
                    "pass attach(bpf, fn_name='...') or attach(ebpfhooks.Program(bpf, '...'))"
                )
            fn_name = choose_function(prog, hook)
        return cls(prog, fn_name)


def choose_function(bpf: Any, hook: Hook) -> str:
    """The function of ``bpf`` to attach to ``hook`` when no ``fn_name`` is given.

    The module's only function; else the one function named for the hook
    (:meth:`ebpfhooks.Hook.function_names`: bcc's ``uprobe__readline``, the bare
    ``readline``, ``on_readline``). Raises :class:`ebpfhooks.ProgramError` listing the
    module's functions when the choice is not clear.
    """
    from ebpfhooks import _bcc

    defined = _bcc.function_names(bpf)
    if len(defined) == 1:
        return defined[0]
    rules = hook.function_names()
    named = [n for n in rules if n in defined]
    if len(named) == 1:
        return named[0]
    if not defined:
        raise ProgramError(f"attach() got a BPF module that defines no function to attach "
                           f"to {hook}; check the C source compiled into it")
    if named:
        why = f"{len(named)} of them are named for {hook} ({', '.join(named)})"
    elif rules:
        why = f"none is named for {hook} ({' or '.join(rules)})"
    else:
        why = f"{hook} has no name a function could follow"
    raise ProgramError(
        f"attach() got a BPF module without fn_name and cannot choose its function: it "
        f"defines {', '.join(defined)}; {why}; pass the one to attach: "
        f"attach(bpf, fn_name={(named or defined)[0]!r})"
    )


_live_links: set[Link] = set()
_live_lock = threading.Lock()
_atexit_registered = False


def _detach_all_at_exit() -> None:
    with _live_lock:
        links = list(_live_links)
    for link in links:
        with contextlib.suppress(Exception):  # at exit, detach everything we can
            link.detach()


#: Signals whose default action (terminate without cleanup) is turned into
#: ``SystemExit`` at the first attach, so ``with`` blocks unwind and atexit runs.
EXIT_SIGNALS = ("SIGTERM", "SIGHUP")


def _exit_on_signal(signum: int, _frame: object) -> None:
    # 128 + signum is what a shell reports for a process killed by the signal
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    """Make SIGTERM/SIGHUP exit through Python (SystemExit) where nobody else handles them.

    Only a signal whose handler is still ``SIG_DFL`` is touched, and only from the
    main thread (Python allows no other); user handlers and ``SIG_IGN`` are left
    alone. SIGINT needs nothing: Python already raises ``KeyboardInterrupt``.
    Set ``EBPFHOOKS_SIGNALS=0`` to leave every handler alone.
    """
    if os.environ.get("EBPFHOOKS_SIGNALS", "1").strip() in ("0", "no", "false"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    for name in EXIT_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _exit_on_signal)


def _forget_links_in_child() -> None:
    # A forked child does not own its parent's links: it must not detach them at exit.
    global _live_lock
    _live_lock = threading.Lock()
    _live_links.clear()


def _register(link: Link) -> None:
    # Registered at the first attach, i.e. after the BPF object registered bcc's
    # own atexit cleanup; atexit runs in reverse, so ours runs before bcc's.
    global _atexit_registered
    with _live_lock:
        _live_links.add(link)
        first = not _atexit_registered
        if first:
            atexit.register(_detach_all_at_exit)
            os.register_at_fork(after_in_child=_forget_links_in_child)
            _atexit_registered = True
    if first:
        _install_signal_handlers()


class _DetachOnExit:
    """``with`` support for anything owning attachments: the block's end calls ``detach()``."""

    __slots__ = ()

    def detach(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()


class Link(_DetachOnExit):
    """An attachment owned by this process: detach it, or let ``with`` do it.

    >>> with hook.attach(prog) as link:                     # doctest: +SKIP
    ...     assert link.attached
    >>> link.attached                                       # doctest: +SKIP
    False

    ``detach()`` twice is harmless. Links still attached at interpreter exit
    are detached then (XDP programs and raw sockets included, which bcc's own
    cleanup leaves behind). At the first attach, SIGTERM and SIGHUP are made
    to raise ``SystemExit`` if their handler is still the default one, so a
    terminated process unwinds and detaches too (``EBPFHOOKS_SIGNALS=0`` turns
    this off; your own handlers are never replaced). After ``fork()`` the
    child does not own (and will not detach) the parent's links.

    ``fd`` is the raw socket's file descriptor for ``raw_socket`` hooks (read
    packets from it), the bpf_link's fd for ``xdp`` hooks attached through a
    link, for the BTF kinds (fentry, fexit, tp_btf, lsm) and for uprobes a group
    attached through one (``via`` ``"uprobe_multi"`` or ``"perf_link"``), ``None``
    otherwise. ``hook``, ``resolution`` and ``program`` say what was attached where;
    ``cookie`` is the BPF cookie the program reads with ``bpf_get_attach_cookie(ctx)``
    (a group's uprobes get their index in the group's hooks; ``None`` when attached
    without one);
    ``passed_over`` lists, for a link made by a fallback chain
    (:func:`ebpfhooks.first_of`), each hook passed over with the error that ruled
    it out (empty otherwise).

    The links of a group's uprobes made through one uprobe_multi link share it: the
    kernel removes all its uprobes at once, so detaching any of these links detaches
    the whole batch, and ``attached`` is False for every one of them afterwards.
    """

    __slots__ = ("_attachment", "_lock", "cookie", "hook", "passed_over", "program",
                 "resolution")

    def __init__(
        self,
        hook: Hook,
        resolution: Resolution,
        program: Program,
        attachment: Attachment,
        cookie: int | None = None,
    ) -> None:
        self.hook = hook
        self.resolution = resolution
        self.program = program
        #: The BPF cookie of this hook (``bpf_get_attach_cookie``), or None.
        self.cookie = cookie
        #: For a link made by a fallback chain: the hooks passed over, with why.
        self.passed_over: tuple[tuple[Hook, Exception], ...] = ()
        self._attachment: Attachment | None = attachment
        self._lock = threading.Lock()
        if attachment.record is not None:  # outlives a SIGKILL: let cleanup find it
            from ebpfhooks.records import record_xdp

            record_xdp(*attachment.record)
        _register(self)

    @property
    def attached(self) -> bool:
        """True until :meth:`detach` has run (on this link, or on another link sharing
        its uprobe_multi link)."""
        attachment = self._attachment
        return attachment is not None and not attachment.done

    @property
    def fd(self) -> int | None:
        """The fd that holds the attachment (see the class docs), None once detached."""
        attachment = self._attachment
        return attachment.fd if attachment is not None else None

    @property
    def via(self) -> str:
        """How the attachment was made: ``"bcc"``, ``"perf_event"``, ``"perf_link"``,
        ``"uprobe_multi"``, ``"bpf_link"``, ``"netlink"`` or ``"socket"`` (empty once
        detached)."""
        return self._attachment.via if self.attached and self._attachment is not None else ""

    def detach(self) -> None:
        """Detach the program from the hook; calling it again does nothing.

        A uprobe attached through a group's uprobe_multi link is detached with every
        other uprobe of that link (the kernel removes them together).

        Raises :class:`ebpfhooks.AttachError` if the kernel refuses (the link is
        then still considered attached, so a retry is possible).
        """
        with self._lock:
            attachment = self._attachment
            if attachment is None:
                return
            attachment.detach()  # does nothing when a sibling already detached it
            self._attachment = None
            if attachment.record is not None:
                from ebpfhooks.records import unrecord_xdp

                unrecord_xdp(attachment.record[0], attachment.record[1])
        with _live_lock:
            _live_links.discard(self)

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"<Link {self.hook} -> {self.program.fn_name} ({state})>"


def check_and_resolve(hooks: Sequence[Hook], fatal: Callable[[Exception], bool] = bool
                      ) -> list[Resolution | Exception]:
    """Privileges and kernel support once per kind, then every target, in bulk per kind.

    >>> check_and_resolve([])
    []

    Returns each hook's resolution or the error that stops it; when an error for which
    ``fatal(err)`` is true (by default: any) is found, the first such error in the
    hooks' order is raised instead.
    """
    from ebpfhooks.errors import EbpfHooksError

    results: list[Resolution | Exception | None] = [None] * len(hooks)
    by_kind: dict[type[Hook], list[int]] = {}
    for i, hook in enumerate(hooks):
        by_kind.setdefault(type(hook), []).append(i)
    for kind, idxs in by_kind.items():
        try:
            hooks[idxs[0]].check_privileges()
            hooks[idxs[0]].check_supported()
        except EbpfHooksError as err:
            for i in idxs:
                results[i] = err
            continue
        for i, res in zip(idxs, kind._resolve_batch([hooks[i] for i in idxs]), strict=True):
            results[i] = res
    for outcome in results:
        if isinstance(outcome, Exception) and fatal(outcome):
            raise outcome
    assert all(r is not None for r in results)
    return cast("list[Resolution | Exception]", results)


class LinkGroup(_DetachOnExit):
    """Several links owned together: detached together, in reverse order.

    >>> with LinkGroup.attach_all(hooks, prog) as group:        # doctest: +SKIP
    ...     print(len(group), "attached")

    ``attach_all`` is all-or-nothing by default: if one attach fails, the
    ones already made are detached and the error is raised. With
    ``optional=True`` a hook that cannot attach (missing target, kernel
    without the feature) is recorded in :attr:`skipped` with its error and the
    rest go on (bpftrace's ``missing_probes = warn``).

    Uprobes and uretprobes are attached in batches: those of one kind on the same file,
    for the same pid, with the same program. On a kernel with uprobe_multi links (6.6+)
    a batch of two or more is ONE link (one system call to attach, one to detach, about
    3,000x faster than a perf event per probe for 1,000 probes); otherwise, and for a
    batch of one, each uprobe is its own perf event. Every uprobe of the group gets its
    index in ``hooks`` as its BPF cookie (``link.cookie``; the program reads it with
    ``bpf_get_attach_cookie(ctx)``): through the uprobe_multi link, or a perf-event
    bpf_link (5.15+); on older kernels it is attached without one (``link.cookie`` is
    None and the helper returns 0). Detaching one link of a uprobe_multi batch detaches
    the batch. A batch the kernel refuses raises its error (all or nothing); with
    ``optional=True`` its hooks are tried one by one instead, so each hook's own error
    lands in :attr:`skipped`.
    """

    __slots__ = ("links", "skipped")

    def __init__(self, links: list[Link] | None = None,
                 skipped: list[tuple[Hook, Exception]] | None = None) -> None:
        self.links: list[Link] = list(links or [])
        self.skipped: list[tuple[Hook, Exception]] = list(skipped or [])

    @classmethod
    def attach_all(
        cls,
        hooks: list[Hook] | tuple[Hook, ...],
        prog: Program | Any,
        fn_name: str | None = None,
        *,
        optional: bool = False,
    ) -> LinkGroup:
        """Attach ``prog`` to every hook; see the class docs for failures and batches.

        ``group.links`` follow the order of ``hooks`` (skipped hooks left out); a
        uprobe's ``link.cookie`` is its index in ``hooks``.
        """
        # one program for all, or (a BPF module without fn_name) each hook's own function
        shared = (Program.coerce(prog, fn_name) if isinstance(prog, Program) or fn_name
                  else None)
        if shared is None and not is_bcc_module(prog):
            raise _not_a_program(prog, "attach()")

        def program_for(hook: Hook) -> Program:
            return shared or Program.coerce(prog, None, hook)

        return cls._attach_each(hooks, program_for, optional=optional)

    @classmethod
    def _attach_each(cls, hooks: Sequence[Hook], program_for: Callable[[Hook], Program], *,
                     optional: bool = False) -> LinkGroup:
        """Attach ``program_for(hook)`` to every hook (``ebpfhooks trace`` gives each hook
        its own function); :meth:`attach_all` says how.

        A kind that attaches many hooks at once has ``_batch_key(resolution)`` (hooks with
        equal keys and the same program form one batch) and a classmethod
        ``_attach_batch(program, hooks, resolutions, cookies, fatal)`` returning each
        hook's ``(Attachment, cookie)`` or error (:func:`ebpfhooks._bcc.attach_uprobe_batch`).
        """
        from ebpfhooks.errors import EbpfHooksError, HookPermissionError, ProgramError

        def fatal(err: Exception) -> bool:
            # a missing privilege or a bad program fails every hook alike: never optional
            return not optional or isinstance(err, (HookPermissionError, ProgramError))

        made: list[Link] = []
        links: dict[int, Link] = {}
        skipped: dict[int, tuple[Hook, Exception]] = {}

        def skip(i: int, err: Exception) -> None:
            if fatal(err):
                raise err
            skipped[i] = (hooks[i], err)

        try:
            # every target is checked before the kernel is asked for anything
            outcomes = check_and_resolve(hooks, fatal)
            units: dict[object, list[int]] = {}  # in the order of their first hook
            programs: dict[int, Program] = {}
            for i, (hook, outcome) in enumerate(zip(hooks, outcomes, strict=True)):
                try:
                    if isinstance(outcome, Exception):
                        raise outcome
                    programs[i] = program_for(hook)
                except EbpfHooksError as err:
                    skip(i, err)
                    continue
                batch_key = getattr(hook, "_batch_key", None)
                key: object = i
                if batch_key is not None:
                    program = programs[i]
                    key = (batch_key(outcome), id(program.bpf), program.fn_name)
                units.setdefault(key, []).append(i)
            for key, idxs in units.items():
                first = hooks[idxs[0]]
                program = programs[idxs[0]]
                if isinstance(key, int):  # a hook attached on its own, as hook.attach does
                    resolution = outcomes[key]
                    assert not isinstance(resolution, Exception)
                    try:
                        link = first._attach_checked(program, resolution)
                    except EbpfHooksError as err:
                        skip(key, err)
                        continue
                    made.append(link)
                    links[key] = link
                    continue
                resolutions = [cast("Resolution", outcomes[i]) for i in idxs]
                results = type(first)._attach_batch(  # type: ignore[attr-defined]
                    program, [hooks[i] for i in idxs], resolutions, list(idxs), fatal)
                errors: list[tuple[int, Exception]] = []
                for i, res, result in zip(idxs, resolutions, results, strict=True):
                    if isinstance(result, Exception):
                        errors.append((i, result))
                        continue
                    attachment, cookie = result
                    link = Link(hooks[i], res, program, attachment, cookie)
                    made.append(link)
                    links[i] = link
                for i, error in errors:
                    skip(i, error)
        except BaseException:
            for link in reversed(made):  # all or nothing: undo what was made, last first
                with contextlib.suppress(Exception):
                    link.detach()
            raise
        return cls([links[i] for i in sorted(links)], [skipped[i] for i in sorted(skipped)])

    @property
    def attached(self) -> bool:
        """True while any link of the group is attached."""
        return any(link.attached for link in self.links)

    def detach(self) -> None:
        """Detach every link (last attached first); errors are raised after trying all."""
        first: BaseException | None = None
        for link in reversed(self.links):
            try:
                link.detach()
            except Exception as err:  # keep going: detach what we can
                first = first or err
        if first is not None:
            raise first

    def __iter__(self) -> Iterator[Link]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __repr__(self) -> str:
        return f"<LinkGroup {len(self.links)} links, {len(self.skipped)} skipped>"
