"""The pure BTF parser: raw bytes to a :class:`Btf` that names types and renders them as C.

The format (``include/uapi/linux/btf.h``): a 24-byte header (magic ``0xeB9F``, version 1,
flags, header length, then offset and length of the type and string sections, both
relative to the end of the header), a type section of variable-length records (type ids
count from 1; 0 is ``void``) and a section of NUL-terminated strings. Either byte order
is accepted (the magic tells which). Malformed bytes raise :class:`BtfFormatError`,
never another exception::

    >>> raw_tracepoint_names(string_section(b"nope"))
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.BtfFormatError: BTF: 4 bytes, shorter than the 24-byte header
    >>> raw_tracepoint_names(b"\\x00btf_trace_sched_switch\\x00int\\x00")
    ['sched_switch']

No I/O here: :mod:`ebpfhooks.kernel.btf.lookup` reads the kernel's files.
"""

from __future__ import annotations

import sys
from array import array

from ebpfhooks.errors import BtfFormatError

# the header and string section are read by a module of their own, outside this package,
# so that `ebpfhooks list` can read raw tracepoint names without the type parser
from ebpfhooks.kernel.btfstrings import HEADER as HEADER
from ebpfhooks.kernel.btfstrings import MAGIC as MAGIC
from ebpfhooks.kernel.btfstrings import _checked_strings, _header
from ebpfhooks.kernel.btfstrings import raw_tracepoint_names as raw_tracepoint_names

__all__ = ["KIND_NAMES", "Btf", "parse_btf", "raw_tracepoint_names", "string_section"]

# kinds (BTF_KIND_*)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19
#: BTF kind numbers by name (``btf_kind_str`` spelling, lower case).
KIND_NAMES = {"int": INT, "ptr": PTR, "array": ARRAY, "struct": STRUCT, "union": UNION,
              "enum": ENUM, "fwd": FWD, "typedef": TYPEDEF, "volatile": VOLATILE,
              "const": CONST, "restrict": RESTRICT, "func": FUNC, "func_proto": FUNC_PROTO,
              "var": VAR, "datasec": DATASEC, "float": FLOAT, "decl_tag": DECL_TAG,
              "type_tag": TYPE_TAG, "enum64": ENUM64}

#: Extra 32-bit words after the 3-word ``btf_type`` record: (fixed, per vlen entry).
_EXTRA: dict[int, tuple[int, int]] = {
    INT: (1, 0), PTR: (0, 0), ARRAY: (3, 0), STRUCT: (0, 3), UNION: (0, 3), ENUM: (0, 2),
    FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0), RESTRICT: (0, 0),
    FUNC: (0, 0), FUNC_PROTO: (0, 2), VAR: (1, 0), DATASEC: (0, 3), FLOAT: (0, 0),
    DECL_TAG: (1, 0), TYPE_TAG: (0, 0), ENUM64: (0, 3),
}
_MODIFIERS = {VOLATILE: "volatile", CONST: "const", RESTRICT: "restrict"}
_MAX_DEPTH = 64
#: Type records one rendering may visit (a malformed BTF could make it exponential).
_BUDGET = 100_000


class Btf:
    """Parsed BTF: the type records' positions, the strings and a lazy FUNC name index.

    Build it with :func:`parse_btf` (or :func:`vmlinux_btf` for the running kernel).
    ``len(btf)`` is the number of types (without ``void``), which is also the last type id.
    A split BTF (a kernel module's, :func:`module_btf`) sits on a base BTF: its type ids
    start at ``first_id`` = ``len(base) + 1`` and its string offsets at the length of the
    base's string section, as the kernel numbers them; ids and strings below those are
    the base's. Name lookups (:meth:`type_id`, :meth:`function_id` ...) search only the
    BTF's own types.

    >>> btf = parse_btf(open("/sys/kernel/btf/vmlinux", "rb").read())  # doctest: +SKIP
    >>> btf.function_signature("vfs_read")  # doctest: +SKIP
    'ssize_t vfs_read(struct file * file, char * buf, size_t count, loff_t * pos)'
    """

    __slots__ = ("_base", "_budget", "_first", "_funcs", "_starts", "_str0", "_strings",
                 "_words")

    def __init__(self, words: array[int], starts: array[int], strings: bytes,
                 base: Btf | None = None) -> None:
        self._words = words
        self._starts = starts  # word index of type id first_id + i at starts[i]
        self._strings = strings
        self._funcs: dict[str, int] | None = None
        self._budget = _BUDGET
        self._base = base
        self._first = len(base) + 1 if base is not None else 1
        self._str0: int = base._str0 + len(base._strings) if base is not None else 0

    def __len__(self) -> int:
        return self._first - 1 + len(self._starts)

    @property
    def first_id(self) -> int:
        """The first type id this BTF defines: 1, or ``len(base) + 1`` for split BTF."""
        return self._first

    @property
    def base(self) -> Btf | None:
        """The base BTF of a split BTF (vmlinux's for a module), else ``None``."""
        return self._base

    # ------------------------------------------------------------------ raw access

    def string(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the string section."""
        if offset < self._str0 and self._base is not None:
            return self._base.string(offset)
        local = offset - self._str0
        if not 0 <= local < len(self._strings):
            raise BtfFormatError(f"string offset {offset} is outside the string section "
                                 f"({self._str0 + len(self._strings)} bytes)")
        end = self._strings.find(b"\0", local)
        try:
            return self._strings[local:end].decode()
        except UnicodeDecodeError as err:
            raise BtfFormatError(f"string at offset {offset} is not UTF-8") from err

    def _w(self, type_id: int) -> array[int]:
        """The words array holding type id ``type_id`` (the base's for a base id)."""
        if type_id < self._first and self._base is not None:
            return self._base._w(type_id)
        return self._words

    def _record(self, type_id: int) -> tuple[int, int, int, int, int]:
        """(word index, kind, vlen, kind_flag, size_or_type) of a type id >= 1.

        The word index is into :meth:`_w` of the id (the base's words for a base id).
        """
        if type_id < self._first and self._base is not None and type_id >= 1:
            return self._base._record(type_id)
        if not self._first <= type_id <= len(self):
            raise BtfFormatError(f"type id {type_id} does not exist "
                                 f"(the BTF has {len(self)} types)")
        at = self._starts[type_id - self._first]
        info = self._words[at + 1]
        return at, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, self._words[at + 2]

    def kind(self, type_id: int) -> int:
        """The ``BTF_KIND_*`` number of a type id (0 for ``void``)."""
        return 0 if type_id == 0 else self._record(type_id)[1]

    def name(self, type_id: int) -> str:
        """The name of a type id (``""`` for anonymous types and ``void``)."""
        if type_id == 0:
            return ""
        return self.string(self._w(type_id)[self._record(type_id)[0]])

    # ------------------------------------------------------------------ functions

    def function_id(self, name: str) -> int | None:
        """The type id of the FUNC named ``name`` (the first one), or ``None``."""
        return self._named(FUNC, name)

    def type_id(self, name: str, kind: int | str) -> int | None:
        """The first type id of ``kind`` named ``name`` among this BTF's own types, or None.

        ``kind`` is a ``BTF_KIND_*`` number or its name (``"func"``, ``"typedef"``,
        ``"struct"`` ... :data:`KIND_NAMES`). FUNC and TYPEDEF come from an index built
        on the first lookup (one pass); other kinds are a scan.

        >>> btf = vmlinux_btf()  # doctest: +SKIP
        >>> btf.type_id("do_sys_openat2", "func")  # doctest: +SKIP
        76192
        >>> btf.type_id("btf_trace_sched_process_exec", TYPEDEF)  # doctest: +SKIP
        41530

        Raises :class:`BtfFormatError` for an unknown kind name or malformed BTF.
        """
        if isinstance(kind, str):
            number = KIND_NAMES.get(kind.lower())
            if number is None:
                raise BtfFormatError(f"unknown BTF kind {kind!r} (expected one of "
                                     f"{', '.join(KIND_NAMES)})")
            kind = number
        if kind in (FUNC, TYPEDEF):
            return self._named(kind, name)
        words = self._words
        for i, at in enumerate(self._starts):
            if (words[at + 1] >> 24) & 0x1F == kind and self.string(words[at]) == name:
                return self._first + i
        return None

    def function_names(self) -> list[str]:
        """The names of this BTF's own FUNC types, each once, in type id order.

        What a fentry/fexit program may name (``ebpfhooks list 'fentry:*'``); for a
        module's (split) BTF only the module's functions. Built with the name index.

        >>> vmlinux_btf().function_names()[:2]  # doctest: +SKIP
        ['__traceiter_initcall_level', '__probestub_initcall_level']
        """
        self._named(FUNC, "")
        assert self._funcs is not None
        return [name for name in self._funcs if not name.startswith("t:")]

    def _named(self, kind: int, name: str) -> int | None:
        """The first type id of ``kind`` (FUNC or TYPEDEF) named ``name``; one index pass."""
        if self._funcs is None:
            index: dict[str, int] = {}
            words = self._words
            for tid, at in enumerate(self._starts, self._first):
                k = (words[at + 1] >> 24) & 0x1F
                if k in (FUNC, TYPEDEF):
                    # a TYPEDEF is kept under a "t:" key so it never hides a FUNC
                    index.setdefault(("t:" if k == TYPEDEF else "") + self.string(words[at]),
                                     tid)
            self._funcs = index
        return self._funcs.get(("t:" if kind == TYPEDEF else "") + name)

    def raw_tracepoint_args(self, name: str) -> list[str] | None:
        """The C types of raw tracepoint ``name``'s ``ctx->args[]``, or ``None``.

        Read from ``typedef void (*btf_trace_NAME)(void *__data, ARGS...)``, dropping the
        ``__data`` cookie: ``args[i]`` of a raw tracepoint program is ``ARGS[i]``.

        >>> vmlinux_btf().raw_tracepoint_args("sched_switch")  # doctest: +SKIP
        ['bool', 'struct task_struct *', 'struct task_struct *', 'unsigned int']
        """
        tid = self._named(TYPEDEF, "btf_trace_" + name)
        if tid is None:
            return None
        ptr = self._record(tid)[4]
        proto = self._record(ptr)[4] if self.kind(ptr) == PTR else 0
        if self.kind(proto) != FUNC_PROTO:
            raise BtfFormatError(f"typedef btf_trace_{name} (type id {tid}) is not a "
                                 "pointer to a function prototype")
        self._budget = _BUDGET
        return [self._declare(t, self.string(n) if n else "", 1)
                for n, t in self._proto_params(proto)[1:]]

    def function_params(self, name: str) -> list[tuple[str, str]] | None:
        """``[(type, name), ...]`` of the function's parameters, or ``None`` if not found.

        A variadic function ends with ``("...", "")``.
        """
        proto = self._proto(name)
        if proto is None:
            return None
        self._budget = _BUDGET
        return [(self.type_name(t) if t or n else "...", self.string(n) if n else "")
                for n, t in self._proto_params(proto)]

    def function_arity(self, name: str) -> tuple[int, bool] | None:
        """(number of named parameters, variadic?) of kernel function ``name``, or ``None``.

        Cheap (no type is rendered): what decides whether a BPF trampoline can take the
        function (at most 6 arguments on x86-64 before 6.6, none variadic).

        >>> vmlinux_btf().function_arity("do_sys_openat2")  # doctest: +SKIP
        (3, False)
        """
        proto = self._proto(name)
        if proto is None:
            return None
        params = self._proto_params(proto)
        variadic = bool(params) and params[-1] == (0, 0)
        return len(params) - variadic, variadic

    def function_return_type(self, name: str) -> str | None:
        """The C return type of kernel function ``name`` (``"void"`` too), or ``None``.

        What a fexit program reads after the arguments (``ctx[len(params)]``).

        >>> vmlinux_btf().function_return_type("do_sys_openat2")  # doctest: +SKIP
        'long'
        """
        proto = self._proto(name)
        if proto is None:
            return None
        return self.type_name(self._record(proto)[4])

    def function_signature(self, name: str) -> str | None:
        """The C prototype of kernel function ``name``, or ``None`` if BTF has no FUNC of it.

        >>> vmlinux_btf().function_signature("do_sys_openat2")  # doctest: +SKIP
        'long do_sys_openat2(int dfd, const char * filename, struct open_how * how)'
        """
        proto = self._proto(name)
        if proto is None:
            return None
        self._budget = _BUDGET
        return self._render_proto(proto, name, 0)

    def _proto(self, name: str) -> int | None:
        tid = self.function_id(name)
        if tid is None:
            return None
        proto = self._record(tid)[4]
        if self.kind(proto) != FUNC_PROTO:
            raise BtfFormatError(f"FUNC {name!r} (type id {tid}) points at type id {proto}, "
                                 "not a FUNC_PROTO")
        return proto

    def _proto_params(self, proto: int) -> list[tuple[int, int]]:
        at, _, vlen, _, _ = self._record(proto)
        w = self._w(proto)
        return [(w[at + 3 + 2 * i], w[at + 4 + 2 * i]) for i in range(vlen)]

    def _render_proto(self, proto: int, declarator: str, depth: int) -> str:
        params = []
        for name_off, ptype in self._proto_params(proto):
            if ptype == 0 and name_off == 0:
                params.append("...")
            else:
                params.append(self._declare(ptype, self.string(name_off) if name_off else "",
                                            depth + 1))
        ret = self._record(proto)[4]
        return self._declare(ret, f"{declarator}({', '.join(params) or 'void'})", depth + 1)

    # ------------------------------------------------------------------ rendering

    def type_name(self, type_id: int) -> str:
        """A type as C, e.g. ``const char *`` or ``struct file *``."""
        self._budget = _BUDGET
        return self._declare(type_id, "", 0)

    def _declare(self, type_id: int, declarator: str, depth: int) -> str:
        """``type_id`` declaring ``declarator`` (a name, or ``""``), as C."""
        if depth > _MAX_DEPTH:
            raise BtfFormatError(f"type id {type_id}: type chain deeper than {_MAX_DEPTH} "
                                 "(a cycle?)")
        self._budget -= 1
        if self._budget < 0:
            raise BtfFormatError(f"type id {type_id}: the type is too large to render")
        if type_id == 0:
            return f"void {declarator}".rstrip()
        at, kind, _, flag, ref = self._record(type_id)
        if kind == TYPE_TAG:
            return self._declare(ref, declarator, depth + 1)
        if kind == PTR:
            target = self._skip_tags(ref, depth)
            tkind = self.kind(target)
            if tkind == FUNC_PROTO:
                return self._render_proto(target, f"(*{declarator})", depth + 1)
            base = self._declare(target, "", depth + 1)
            if tkind == ARRAY:
                base = f"({base})"
            star = base + ("*" if base.endswith("*") else " *")
            return f"{star} {declarator}".rstrip()
        if kind in _MODIFIERS:
            word = _MODIFIERS[kind]
            target = self._skip_tags(ref, depth)
            if self.kind(target) == PTR:  # char * const p
                return self._declare(target, f"{word} {declarator}".rstrip(), depth + 1)
            return f"{word} {self._declare(target, declarator, depth + 1)}"
        words = self._w(type_id)
        if kind == ARRAY:
            elem, _, nelems = words[at + 3], words[at + 4], words[at + 5]
            return self._declare(elem, f"{declarator}[{nelems}]", depth + 1)
        if kind == FUNC_PROTO:
            return self._render_proto(type_id, declarator, depth + 1)
        name = self.string(words[at])
        if kind in (STRUCT, UNION):
            name = f"{'struct' if kind == STRUCT else 'union'} {name or '(anon)'}"
        elif kind in (ENUM, ENUM64):
            name = f"enum {name or '(anon)'}"
        elif kind == FWD:
            name = f"{'union' if flag else 'struct'} {name}"
        elif kind not in (INT, FLOAT, TYPEDEF):
            raise BtfFormatError(f"type id {type_id} of kind {kind} is not a C type")
        return f"{name} {declarator}".rstrip()

    def _skip_tags(self, type_id: int, depth: int) -> int:
        for _ in range(_MAX_DEPTH - depth + 1):
            if type_id == 0 or self.kind(type_id) != TYPE_TAG:
                return type_id
            type_id = self._record(type_id)[4]
        raise BtfFormatError(f"type id {type_id}: TYPE_TAG chain too long (a cycle?)")


def parse_btf(data: bytes, base: Btf | None = None) -> Btf:
    """Parse raw BTF bytes (as in ``/sys/kernel/btf/vmlinux``) into a :class:`Btf`.

    >>> parse_btf(b"nope")
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.BtfFormatError: BTF: 4 bytes, shorter than the 24-byte header

    ``base`` makes it split BTF on top of ``base`` (a module's BTF on vmlinux's: type
    ids and string offsets continue after the base's). Raises :class:`BtfFormatError` for
    anything that is not complete, well-formed BTF.
    """
    data = _as_bytes(data)
    order, (type_start, type_end), (str_start, str_end) = _header(data, len(data))
    strings = _checked_strings(data[str_start:str_end])
    words: array[int] = array("I")
    words.frombytes(data[type_start:type_end])
    if (order == "<") != (sys.byteorder == "little"):
        words.byteswap()
    return Btf(words, _scan(words, 1 if base is None else len(base) + 1), strings, base)


def string_section(data: bytes) -> bytes:
    """The NUL-separated string section of raw BTF bytes (header checked, types not parsed).

    >>> string_section(b"nope")
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.BtfFormatError: BTF: 4 bytes, shorter than the 24-byte header

    Raises :class:`BtfFormatError` like :func:`parse_btf`.
    """
    data = _as_bytes(data)
    _, _, (start, end) = _header(data, len(data))
    return _checked_strings(data[start:end])


def _as_bytes(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BtfFormatError(f"BTF must be bytes, got {type(data).__name__}")
    return bytes(data)


def _scan(words: array[int], first: int = 1) -> array[int]:
    """The word index at which each type record starts; checks kinds and lengths.

    ``first`` is the type id of the first record (for messages).
    """
    starts: array[int] = array("L")
    append = starts.append
    extra = _EXTRA
    n = len(words)
    i = 0
    while i < n:
        if i + 3 > n:
            raise BtfFormatError(f"type id {len(starts) + first}: record truncated")
        info = words[i + 1]
        kind = (info >> 24) & 0x1F
        try:
            fixed, per = extra[kind]
        except KeyError:
            raise BtfFormatError(f"type id {len(starts) + first}: unknown kind "
                                 f"{kind}") from None
        append(i)
        i += 3 + fixed + per * (info & 0xFFFF)
    if i != n:
        raise BtfFormatError(f"type id {len(starts) + first - 1}: record runs past the type "
                             "section")
    return starts
