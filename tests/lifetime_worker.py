"""A process holding links of every kind, for tests/test_lifetimes.py (run as a script).

Usage: lifetime_worker.py PREFIX IFACE TARGET ENDING [XDP_VIA]

Compiles programs named PREFIX_<kind>, attaches tracepoint, raw tracepoint, profile,
uprobe, uretprobe, raw socket and XDP (and kprobe/kretprobe where the kernel has
them) inside ``with LinkGroup``, prints ``attached`` and then ends as ENDING says:

* ``exception``: raises inside the ``with`` block;
* ``wait``: sleeps until a signal ends it (SIGINT, SIGTERM, SIGKILL from the test);
* ``count``: reads ``go`` from stdin, triggers N events of each kind, reads
  ``report`` and prints the counters as JSON, then exits normally.

With ENDING ``count`` the XDP attach may lose the race to a twin process: it then
prints ``xdp-refused`` (ebpfhooks never replaces another program) and goes on.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

from bcc import BPF

import ebpfhooks
from ebpfhooks import Hook, LinkGroup, Program
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus

N = 20
KINDS = ["tp", "rt", "up", "ur", "sock", "xdp", "kp", "kr", "pe"]

SOURCE = """
BPF_ARRAY(counts, u64, 9);
static inline void bump(int i) { u64 *v = counts.lookup(&i); if (v) __sync_fetch_and_add(v, 1); }
static inline int mine(void) { return (bpf_get_current_pid_tgid() >> 32) == MYPID; }
int PFX_tp(void *ctx) { if (mine()) bump(0); return 0; }
int PFX_rt(struct bpf_raw_tracepoint_args *ctx) {
    if (mine() && ctx->args[1] == 110) bump(1); return 0; }
int PFX_up(struct pt_regs *ctx) { bump(2); return 0; }
int PFX_ur(struct pt_regs *ctx) { bump(3); return 0; }
int PFX_sock(struct __sk_buff *skb) { if (load_half(skb, 12) == 0x88b5) bump(4); return 0; }
int PFX_xdp(struct xdp_md *ctx) { bump(5); return XDP_PASS; }
int PFX_kp(struct pt_regs *ctx) { if (mine()) bump(6); return 0; }
int PFX_kr(struct pt_regs *ctx) { if (mine()) bump(7); return 0; }
int PFX_pe(void *ctx) { bump(8); return 0; }
"""


def main() -> None:
    prefix, iface, target, ending = sys.argv[1:5]
    if len(sys.argv) > 5:
        os.environ["EBPFHOOKS_XDP_ATTACH"] = sys.argv[5]
    bpf = BPF(text=SOURCE.replace("PFX", prefix).replace("MYPID", str(os.getpid())))
    specs = {
        "tp": "tracepoint:syscalls:sys_enter_getppid",
        "rt": "rawtracepoint:sys_enter",
        "up": f"uprobe:{target}:ehk_target",
        "ur": f"uretprobe:{target}:ehk_ret",
        "sock": f"raw_socket:{iface}",
        "pe": "profile:hz:49",
    }
    if features.kprobes().status is FeatureStatus.YES:
        specs["kp"] = "kprobe:__x64_sys_getppid"
        specs["kr"] = "kretprobe:__x64_sys_getppid"
    hooks = [Hook.from_spec(s) for s in specs.values()]
    group = LinkGroup()
    for hook, kind in zip(hooks, specs, strict=True):
        group.links.append(hook.attach(Program(bpf, f"{prefix}_{kind}")))
    xdp_refused = False
    try:
        group.links.append(Hook.from_spec(f"xdp:{iface}:skb").attach(bpf, f"{prefix}_xdp"))
    except ebpfhooks.AttachError as err:
        if ending != "count" or "already has an XDP program" not in str(err):
            raise
        xdp_refused = True
    with group:
        print("attached" + (" xdp-refused" if xdp_refused else ""), flush=True)
        if ending == "exception":
            raise RuntimeError("boom inside with")
        if ending == "wait":
            while True:
                time.sleep(1)
        assert sys.stdin.readline().strip() == "go"
        libc = ctypes.CDLL(None)
        for _ in range(N):
            libc.getppid()
        subprocess.run([target, str(N)], check=True, capture_output=True)
        print("triggered", flush=True)
        assert sys.stdin.readline().strip() == "report"
        counts = {k: int(bpf["counts"][ctypes.c_int(i)].value) for i, k in enumerate(KINDS)}
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
