/* BPF programs for the live tests: one counter per kind, filtered to the test's own
 * events. FILTER_PID (the test process) and NR_GETPPID come from -D flags. */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/bpf.h>

#define TEST_ETHERTYPE 0x88b5

BPF_ARRAY(counts, u64, 8);
BPF_ARRAY(retsum, u64, 1);

enum { C_KPROBE, C_KRETPROBE, C_TP, C_RAWTP, C_XDP, C_UPROBE, C_URETPROBE, C_RAWSOCK };

static inline void bump(int idx) {
    u64 *v = counts.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}

static inline int is_test_pid(void) {
    return (bpf_get_current_pid_tgid() >> 32) == FILTER_PID;
}

int on_kprobe(struct pt_regs *ctx) {
    if (is_test_pid()) bump(C_KPROBE);
    return 0;
}

int on_kretprobe(struct pt_regs *ctx) {
    if (is_test_pid()) bump(C_KRETPROBE);
    return 0;
}

int on_getppid(struct tracepoint__syscalls__sys_enter_getppid *args) {
    if (is_test_pid()) bump(C_TP);
    return 0;
}

int on_raw_sys_enter(struct bpf_raw_tracepoint_args *ctx) {
    /* sys_enter(struct pt_regs *regs, long id) */
    if (is_test_pid() && ctx->args[1] == NR_GETPPID) bump(C_RAWTP);
    return 0;
}

int on_xdp(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    if (eth->h_proto == htons(TEST_ETHERTYPE)) bump(C_XDP);
    return XDP_PASS;
}

int on_uprobe(struct pt_regs *ctx) {
    bump(C_UPROBE);
    return 0;
}

int on_uretprobe(struct pt_regs *ctx) {
    int zero = 0;
    u64 *s = retsum.lookup(&zero);
    if (s) __sync_fetch_and_add(s, (u64)PT_REGS_RC(ctx));
    bump(C_URETPROBE);
    return 0;
}

int on_socket(struct __sk_buff *skb) {
    if (load_half(skb, 12) == TEST_ETHERTYPE) bump(C_RAWSOCK);
    return 0;
}
