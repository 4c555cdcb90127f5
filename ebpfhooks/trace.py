"""``ebpfhooks trace``: count hits per hook and per process, live, for any hook kinds.

>>> from ebpfhooks.trace import trace
>>> summary = trace(["tracepoint:syscalls:sys_enter_openat"], duration=2)  # doctest: +SKIP
>>> summary.hooks[0].hits > 0                                             # doctest: +SKIP
True

One generated C function per hook counts into a hash map keyed by (hook index,
process id, command name); XDP and raw socket functions count packets by protocol
(EtherType and IP protocol) instead, and let every packet through (XDP_PASS; the raw
socket itself receives nothing). Uprobes and uretprobes share ONE function, which
takes the hook index from the BPF cookie the group gave each of them
(``bpf_get_attach_cookie``), so a wildcard over one binary is one uprobe_multi link
(kernel 6.6+; a perf event per probe with its cookie from 5.15; one function per hook
before that). The generated source contains no text from the user: only hook indices
and the ``pid`` filter, both Python ints. Hook names go to the kernel through the
hooks' own (validated) attach paths.

Every hook is checked (privileges, kernel support, target exists) before anything
is compiled, so errors come fast; everything attached is detached at the end, on
Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from ebpfhooks.errors import AttachError, EbpfHooksError, SpecError

if TYPE_CHECKING:
    from ebpfhooks.hooks.base import Hook

__all__ = ["COOKIE_FUNCTION", "COOKIE_KINDS", "HookCount", "TraceSummary", "function_name",
           "generate", "trace"]

MAX_HOOKS = 512
_PACKET_KINDS = ("xdp", "raw_socket")

_PRELUDE = """\
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

struct ehk_key_t { u32 hook; u32 pid; char comm[16]; };
struct ehk_pkt_t { u32 hook; u16 ethertype; u8 ipproto; u8 pad; };
BPF_HASH(ehk_hits, struct ehk_key_t, u64, 16384);
BPF_HASH(ehk_pkts, struct ehk_pkt_t, u64, 4096);

static __always_inline int ehk_count(u32 hook) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
PID_FILTER
    struct ehk_key_t key = {};
    key.hook = hook;
    key.pid = tgid;
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    ehk_hits.increment(key);
    return 0;
}
"""

_XDP = """\
int ehk_h{i}(struct xdp_md *ctx) {{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ehk_pkt_t key = {{}};
    key.hook = {i};
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) <= end) {{
        key.ethertype = bpf_ntohs(eth->h_proto);
        if (key.ethertype == ETH_P_IP) {{
            struct iphdr *ip = (void *)(eth + 1);
            if ((void *)(ip + 1) <= end)
                key.ipproto = ip->protocol;
        }} else if (key.ethertype == ETH_P_IPV6) {{
            struct ipv6hdr *ip6 = (void *)(eth + 1);
            if ((void *)(ip6 + 1) <= end)
                key.ipproto = ip6->nexthdr;
        }}
    }}
    ehk_pkts.increment(key);
    return XDP_PASS;
}}
"""

_SOCKET = """\
int ehk_h{i}(struct __sk_buff *skb) {{
    struct ehk_pkt_t key = {{}};
    key.hook = {i};
    if (skb->len >= ETH_HLEN) {{
        key.ethertype = load_half(skb, 12);
        if (key.ethertype == ETH_P_IP && skb->len >= ETH_HLEN + 20)
            key.ipproto = load_byte(skb, ETH_HLEN + 9);
        else if (key.ethertype == ETH_P_IPV6 && skb->len >= ETH_HLEN + 40)
            key.ipproto = load_byte(skb, ETH_HLEN + 6);
    }}
    ehk_pkts.increment(key);
    return 0;
}}
"""


def _int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{what} must be an int from {low} to {high}, got {value!r}")
    return value


#: The kinds whose hooks share :data:`COOKIE_FUNCTION` when ``generate(cookies=True)``.
COOKIE_KINDS = ("uprobe", "uretprobe")
#: The one function counting every hook of :data:`COOKIE_KINDS` by its BPF cookie.
COOKIE_FUNCTION = "ehk_cookie"


def function_name(hooks: Sequence[Hook], i: int, cookies: bool) -> str:
    """The generated function that counts ``hooks[i]``.

    >>> from ebpfhooks.hooks import Tracepoint, Uprobe
    >>> hooks = [Tracepoint("sched", "sched_switch"), Uprobe("/bin/bash", "readline")]
    >>> function_name(hooks, 0, True), function_name(hooks, 1, True), function_name(hooks, 1, False)
    ('ehk_h0', 'ehk_cookie', 'ehk_h1')
    """
    return COOKIE_FUNCTION if cookies and hooks[i].kind in COOKIE_KINDS else f"ehk_h{i}"


def generate(hooks: Sequence[Hook], pid: int | None = None, cookies: bool = False) -> str:
    """The C source of the counting program: one function ``ehk_hN`` per hook ``N``.

    >>> from ebpfhooks.hooks import Tracepoint
    >>> src = generate([Tracepoint("sched", "sched_switch")], pid=42)
    >>> "int ehk_h0(void *ctx)" in src and "if (tgid != 42)" in src
    True

    With ``cookies``, uprobes and uretprobes have no function of their own: one function,
    ``ehk_cookie``, counts them all under the hook index it reads with
    ``bpf_get_attach_cookie(ctx)`` (the group gives each uprobe its index as its cookie;
    kernel 5.15+).

    Only ints reach the text: the hook index and ``pid`` (checked to be an int).
    """
    if pid is not None:
        _int(pid, "pid", 1, (1 << 22) - 1)
    filt = f"    if (tgid != {pid}) return 0;" if pid is not None else ""
    parts = [_PRELUDE.replace("PID_FILTER", filt)]
    if cookies and any(hook.kind in COOKIE_KINDS for hook in hooks):
        parts.append(f"int {COOKIE_FUNCTION}(struct pt_regs *ctx) {{\n"
                     "    return ehk_count((u32)bpf_get_attach_cookie(ctx));\n}\n")
    for i, hook in enumerate(hooks):
        _int(i, "hook index", 0, MAX_HOOKS)
        if cookies and hook.kind in COOKIE_KINDS:
            continue
        if hook.kind == "xdp":
            parts.append(_XDP.format(i=i))
        elif hook.kind == "raw_socket":
            parts.append(_SOCKET.format(i=i))
        else:
            parts.append(f"int ehk_h{i}({type(hook).program_ctx}) {{\n"
                         f"    return ehk_count({i});\n}}\n")
    return "\n".join(parts)


_ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "VLAN",
               0x88A8: "QinQ", 0x88CC: "LLDP", 0x8847: "MPLS"}
_IPPROTOS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP",
             58: "ICMPv6", 132: "SCTP", 0: "HOPOPT"}


def protocol_name(ethertype: int, ipproto: int) -> str:
    """Name a packet's protocol from its EtherType and IP protocol.

    >>> protocol_name(0x0800, 6), protocol_name(0x86DD, 58), protocol_name(0x88B5, 0)
    ('IPv4/TCP', 'IPv6/ICMPv6', 'ethertype 0x88b5')
    """
    if ethertype in (0x0800, 0x86DD):
        l4 = _IPPROTOS.get(ipproto, f"proto {ipproto}")
        return f"{_ETHERTYPES[ethertype]}/{l4}"
    if ethertype == 0:
        return "runt frame"
    return _ETHERTYPES.get(ethertype, f"ethertype {ethertype:#06x}")


class HookCount:
    """What one hook counted: ``hits``, per-process ``processes`` or per-protocol ``protocols``."""

    __slots__ = ("hits", "kind", "processes", "protocols", "spec")

    def __init__(self, spec: str, kind: str) -> None:
        self.spec = spec
        self.kind = kind
        self.hits = 0
        self.processes: dict[tuple[int, str], int] = {}
        self.protocols: dict[tuple[int, int], int] = {}

    def __repr__(self) -> str:
        return f"HookCount(spec={self.spec!r}, kind={self.kind!r}, hits={self.hits})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts, biggest first."""
        out: dict[str, Any] = {"spec": self.spec, "kind": self.kind, "hits": self.hits}
        if self.kind in _PACKET_KINDS:
            out["protocols"] = [
                {"protocol": protocol_name(e, p), "ethertype": e, "ipproto": p, "packets": n}
                for (e, p), n in sorted(self.protocols.items(), key=lambda kv: -kv[1])]
        else:
            out["processes"] = [
                {"pid": pid, "comm": comm, "hits": n}
                for (pid, comm), n in sorted(self.processes.items(), key=lambda kv: -kv[1])]
        return out


class TraceSummary:
    """The counts of a trace run: ``hooks`` (one :class:`HookCount` each) and ``seconds``."""

    __slots__ = ("hooks", "pid", "seconds")

    def __init__(self, hooks: list[HookCount], seconds: float, pid: int | None) -> None:
        self.hooks = hooks
        self.seconds = seconds
        self.pid = pid

    def __repr__(self) -> str:
        return (f"<TraceSummary {len(self.hooks)} hooks, {sum(h.hits for h in self.hooks)} "
                f"hits in {self.seconds:.1f} s>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"seconds": round(self.seconds, 3), "pid": self.pid,
                "hooks": [h.to_dict() for h in self.hooks]}

    def render(self, top: int = 10, title: str = "summary") -> str:
        """The table: hits per hook, then the top processes (or protocols) of each."""
        what = f" (pid {self.pid})" if self.pid else ""
        lines = [f"ebpfhooks trace {title}: {len(self.hooks)} hooks, "
                 f"{self.seconds:.1f} s{what}", f"{'HITS':>10}  HOOK"]
        for h in self.hooks:
            lines.append(f"{h.hits:>10}  {h.spec}")
            if h.kind in _PACKET_KINDS:
                for row in h.to_dict()["protocols"][:top]:
                    lines.append(f"{'':>10}  {row['packets']:>10}  {row['protocol']}")
            else:
                for row in h.to_dict()["processes"][:top]:
                    lines.append(f"{'':>10}  {row['hits']:>10}  pid {row['pid']:<8} "
                                 f"{row['comm']}")
        return "\n".join(lines)


def _prepare(specs: Sequence[str], include_unsupported: bool = False,
             on_note: Callable[[str], None] | None = None) -> list[Hook]:
    from ebpfhooks.chain import first_of
    from ebpfhooks.discover import expand

    hooks: list[Hook] = []
    seen: set[Hook] = set()
    for spec in specs:
        if "|" in spec:  # a fallback chain: the first alternative that works here
            choice = first_of(spec).choose()
            if on_note is not None:
                for skipped, why in choice.passed_over:
                    on_note(f"{skipped} passed over: {str(why).splitlines()[0]}")
                on_note(f"chain {spec!r}: using {choice.hook}")
            expanded: Sequence[Hook] = [choice.hook]
        else:
            expanded = expand(spec, include_unsupported=include_unsupported)
        for hook in expanded:
            if hook not in seen:
                seen.add(hook)
                hooks.append(hook)
    if not hooks:
        raise SpecError("trace needs at least one hook spec",
                        hint="e.g. ebpfhooks trace tracepoint:syscalls:sys_enter_openat")
    if len(hooks) > MAX_HOOKS:
        raise SpecError(
            f"{len(hooks)} hooks match; trace attaches at most {MAX_HOOKS}",
            hint="narrow the pattern (see the matches with: ebpfhooks list 'PATTERN')")
    from ebpfhooks.hooks.link import check_and_resolve

    check_and_resolve(hooks)  # fail fast, before compiling anything: the first error
    return hooks


def _cookies() -> bool:
    """Whether every uprobe of the group will carry its cookie (perf-event links, 5.15+;
    uprobe_multi links, 6.6+, come later still)."""
    from ebpfhooks.kernel.features import FeatureStatus, perf_link

    return perf_link().status is FeatureStatus.YES


def _read(bpf: Any, counts: list[HookCount]) -> None:
    for c in counts:
        c.hits = 0
        c.processes.clear()
        c.protocols.clear()
    for key, value in bpf["ehk_hits"].items():
        if key.hook >= len(counts):
            continue  # cannot happen: every cookie is a hook index
        c = counts[key.hook]
        n = int(value.value)
        comm = bytes(key.comm).split(b"\0", 1)[0].decode("utf-8", "replace")
        c.processes[(int(key.pid), comm)] = n
        c.hits += n
    for key, value in bpf["ehk_pkts"].items():
        c = counts[key.hook]
        n = int(value.value)
        proto = (int(key.ethertype), int(key.ipproto))
        c.protocols[proto] = c.protocols.get(proto, 0) + n
        c.hits += n


def trace(
    specs: Sequence[str],
    *,
    duration: float | None = None,
    pid: int | None = None,
    interval: float = 1.0,
    on_update: Callable[[TraceSummary], None] | None = None,
    on_ready: Callable[[list[Hook]], None] | None = None,
    include_unsupported: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> TraceSummary:
    """Attach a counting program to every hook of ``specs`` (wildcards expanded) and count.

    A spec holding ``|`` is a fallback chain (:func:`ebpfhooks.first_of`): its first
    alternative that works here is traced, and ``on_note`` hears which and why the
    others were passed over.

    Runs for ``duration`` seconds (``None``: until Ctrl-C), calling ``on_update`` with
    the counts so far every ``interval`` seconds and ``on_ready`` once attached;
    returns the final :class:`TraceSummary`. ``pid`` keeps only that process's hits
    (not applied to packets).

    Raises what :func:`ebpfhooks.expand` and :meth:`ebpfhooks.Hook.attach` raise
    (:class:`ebpfhooks.NotSupportedError` for kprobes on a kernel without them,
    before anything is compiled); nothing stays attached afterwards.
    """
    if duration is not None and not duration > 0:
        raise SpecError(f"duration must be a positive number of seconds, got {duration!r}")
    if pid is not None:
        _int(pid, "pid", 1, (1 << 22) - 1)
        from ebpfhooks.errors import ProcessNotFoundError
        from ebpfhooks.kernel.features import STATUS_FILE

        proc = STATUS_FILE.parent.parent / str(pid)
        if not proc.exists():
            raise ProcessNotFoundError(str(pid), where="/proc",
                                       hint="check the pid with: ps -p PID")
    hooks = _prepare(specs, include_unsupported, on_note)
    from ebpfhooks import _bcc
    from ebpfhooks.hooks.link import LinkGroup, Program

    bcc = _bcc.load()
    cookies = _cookies()
    try:
        bpf = bcc.BPF(text=generate(hooks, pid, cookies))
    except Exception as err:
        raise _compile_error(err) from err
    counts = [HookCount(str(h), h.kind) for h in hooks]
    programs = {h: Program(bpf, function_name(hooks, i, cookies)) for i, h in enumerate(hooks)}
    group: LinkGroup | None = None
    old_term = signal.getsignal(signal.SIGTERM)

    def _term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    start = time.monotonic()
    try:
        if threading_main():
            signal.signal(signal.SIGTERM, _term)
        group = LinkGroup._attach_each(hooks, programs.__getitem__)
        for i, link in enumerate(group.links):  # _attach_each keeps the hooks' order
            if link.program.fn_name == COOKIE_FUNCTION and link.cookie != i:
                raise AttachError(f"{link.hook} was attached without its BPF cookie, which "
                                  "ebpfhooks trace counts it by; please report this")
        if on_ready is not None:
            on_ready(hooks)
        start = time.monotonic()
        end = None if duration is None else start + duration
        try:
            while end is None or time.monotonic() < end:
                left = interval if end is None else min(interval, end - time.monotonic())
                if left > 0:
                    time.sleep(left)
                if on_update is not None:
                    _read(bpf, counts)
                    on_update(TraceSummary(counts, time.monotonic() - start, pid))
        except KeyboardInterrupt:
            pass
        _read(bpf, counts)
        return TraceSummary(counts, time.monotonic() - start, pid)
    finally:
        try:
            if group is not None:
                group.detach()
        finally:
            bpf.cleanup()
            if threading_main():
                signal.signal(signal.SIGTERM, old_term)


def threading_main() -> bool:
    """True in the main thread (only there may signal handlers be set)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def _compile_error(err: BaseException) -> EbpfHooksError:
    from ebpfhooks.errors import ProgramError

    return ProgramError(
        f"bcc could not compile the counting program ({err}); check the kernel headers: "
        "ebpfhooks doctor")


def live_printer(out: IO[str], top: int = 10) -> Callable[[TraceSummary], None]:
    """An ``on_update`` that redraws the table in place on a terminal.

    >>> import io
    >>> live_printer(io.StringIO())(TraceSummary([], 1.0, None))
    """
    def update(summary: TraceSummary) -> None:
        if out.isatty():
            out.write("\x1b[H\x1b[J" + summary.render(top, "live (Ctrl-C to stop)") + "\n")
            out.flush()
    return update
