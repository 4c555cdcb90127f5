#!/usr/bin/env bash
# Set up everything ebpfhooks needs on a Debian machine, idempotently.
#
#   sudo scripts/setup.sh
#
# 1. Debian packages (bcc's Python module, venv, bpftrace, bpftool, a C toolchain)
# 2. kernel headers for bcc under /lib/modules/$(uname -r)/{build,source}
# 3. tracefs and debugfs mounted
# 4. .venv in the checkout (sees Debian's bcc) with ebpfhooks installed editable, [test] extras
# 5. a check that `import bcc, ebpfhooks` works
# 6. the VM tier (tests/vmtier.py): qemu, Debian's kernel image (the newest /boot/vmlinuz-*)
#    with its matching headers, and virtme-ng from PyPI in its own venv (/opt/vng)
#
# Running it again does nothing but checks. Every command that changes the machine is
# printed first as "setup: + COMMAND".
#
# Knobs (for tests of this script; not needed for normal use):
#   EBPFHOOKS_MODULES_DIR    where the build/source links go (default /lib/modules/$(uname -r))
#   EBPFHOOKS_HEADERS_SRC    where installed header trees are looked for (default /usr/src)
#   EBPFHOOKS_SETUP_NO_APT=1 never run apt: fail if a package is missing, and for headers use
#                            only trees already in EBPFHOOKS_HEADERS_SRC
#   EBPFHOOKS_SKIP_VM=1      leave out step 6 (the VM tier is then skipped by the tests too)
#   EBPFHOOKS_VNG_VENV       where virtme-ng is installed (default /opt/vng)
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
run() { say "+ $*"; "$@"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KVER="$(uname -r)"
MODULES_DIR="${EBPFHOOKS_MODULES_DIR:-/lib/modules/$KVER}"
HEADERS_SRC="${EBPFHOOKS_HEADERS_SRC:-/usr/src}"
NO_APT="${EBPFHOOKS_SETUP_NO_APT:-0}"
VENV="$REPO/.venv"
STAMP="$VENV/.ebpfhooks-installed"
SYS_PY=/usr/bin/python3

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

# ---------------------------------------------------------------- preconditions
if [ "$(id -u)" -ne 0 ]; then
    die "must run as root (try: sudo $0); it installs packages, mounts tracefs and loads eBPF programs"
fi

if [ ! -f /etc/debian_version ]; then
    cat >&2 <<'EOF'
setup: ERROR: this script only knows Debian (no /etc/debian_version).
setup: Install by hand: bcc's Python bindings (python3-bcc / python3-bpfcc), python3 venv support,
setup: bpftrace, bpftool, iproute2, gcc, make, libc headers, binutils, and kernel headers for the
setup: running kernel under /lib/modules/$(uname -r)/build; mount tracefs on /sys/kernel/tracing and
setup: debugfs on /sys/kernel/debug; then: python3 -m venv --system-site-packages .venv &&
setup: .venv/bin/pip install -e '.[test]' --config-settings editable_mode=compat
setup: (with the python3 that can `import bcc`).
EOF
    exit 1
fi
say "Debian $(cat /etc/debian_version), kernel $KVER, checkout $REPO"

# ---------------------------------------------------------------- apt helpers
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        run apt-get update -q
        APT_UPDATED=1
    fi
}

is_installed() {  # is_installed PKG: true when dpkg has PKG fully installed
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

apt_install() {  # apt_install PKG...: install (after one apt-get update per run)
    [ "$NO_APT" = 1 ] && die "would need to install: $* (EBPFHOOKS_SETUP_NO_APT=1 is set)"
    apt_update_once
    run apt-get install -y -q --no-install-recommends "$@"
}

ensure_packages() {  # ensure_packages LABEL PKG...: install the ones not installed yet
    local label="$1" pkg
    shift
    local missing=()
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "${label}missing Debian packages: ${missing[*]}"
        apt_install "${missing[@]}"
    else
        say "${label}Debian packages: all present ($*)"
    fi
}

# ---------------------------------------------------------------- 1. packages
PACKAGES=(python3-bpfcc python3-venv bpftrace bpftool iproute2 gcc make libc6-dev binutils)
ensure_packages "" "${PACKAGES[@]}"

# ---------------------------------------------------------------- 2. kernel headers
headers_ok() {  # headers_ok DIR: a usable kernel build tree
    [ -d "$1" ] && { [ -d "$1/include" ] || [ -f "$1/Makefile" ]; }
}

# Newest "<ver>-<arch>" tree in $HEADERS_SRC that has its "<ver>-common" partner.
# Flavours such as -cloud-amd64 or -rt-amd64 have no plain -common partner and are skipped.
newest_headers_version() {
    local arch="$1" dir name ver
    for dir in "$HEADERS_SRC"/linux-headers-*-"$arch"; do
        [ -d "$dir" ] || continue
        name="$(basename "$dir")"
        ver="${name#linux-headers-}"
        ver="${ver%-"$arch"}"
        headers_ok "$dir" || continue
        [ -d "$HEADERS_SRC/linux-headers-$ver-common" ] || continue
        printf '%s\n' "$ver"
    done | sort -V | tail -n 1
}

link() {  # link TARGET NAME: point the symlink NAME at TARGET (NAME must not be a real dir)
    if [ -e "$2" ] && [ ! -L "$2" ]; then
        die "$2 exists and is not a symlink; refusing to replace it (move it away by hand)"
    fi
    if [ "$(readlink "$2" 2>/dev/null || true)" != "$1" ]; then
        run ln -sfn "$1" "$2"
    fi
}

link_debian_headers() {
    local arch ver
    arch="$(dpkg --print-architecture)"
    if [ "$NO_APT" != 1 ] && ! is_installed "linux-headers-$arch"; then
        apt_install "linux-headers-$arch"
    fi
    ver="$(newest_headers_version "$arch")"
    [ -n "$ver" ] || die "no linux-headers-<ver>-$arch tree with its -common partner in $HEADERS_SRC"
    [ -d "$MODULES_DIR" ] || run mkdir -p "$MODULES_DIR"
    link "$HEADERS_SRC/linux-headers-$ver-$arch" "$MODULES_DIR/build"
    link "$HEADERS_SRC/linux-headers-$ver-common" "$MODULES_DIR/source"
    warn "kernel headers in $MODULES_DIR are Debian's $ver ($arch), NOT the running kernel $KVER."
    warn "bcc programs compile against them, but a program that reads kernel struct fields"
    warn "(struct sock, task_struct ...) may read wrong offsets without any error."
    warn "Use tracepoint arguments, helpers and registers instead."
}

if headers_ok "$MODULES_DIR/build"; then
    say "kernel headers: $MODULES_DIR/build -> $(readlink -f "$MODULES_DIR/build")"
    build_target="$(readlink "$MODULES_DIR/build" 2>/dev/null || true)"
    case "$build_target" in
        "$HEADERS_SRC"/linux-headers-*)
            ver="${build_target#"$HEADERS_SRC"/linux-headers-}"
            ver="${ver%-"$(dpkg --print-architecture)"}"
            if [ "$ver" != "$KVER" ]; then
                say "note: those are headers for $ver, not for the running kernel $KVER"
                # an earlier run may have been stopped between the two links
                if [ ! -e "$MODULES_DIR/source" ] && [ -d "$HEADERS_SRC/linux-headers-$ver-common" ]; then
                    link "$HEADERS_SRC/linux-headers-$ver-common" "$MODULES_DIR/source"
                fi
            fi
            ;;
    esac
else
    say "kernel headers: none usable at $MODULES_DIR/build"
    exact="linux-headers-$KVER"
    tried_exact=0
    if [ "$NO_APT" != 1 ]; then
        apt_update_once
        if apt-cache show "$exact" >/dev/null 2>&1; then
            tried_exact=1
            if is_installed "$exact"; then
                say "$exact is installed but $MODULES_DIR/build is missing"
            else
                apt_install "$exact"
            fi
        else
            say "no Debian package $exact (not a Debian kernel); falling back to linux-headers-$(dpkg --print-architecture)"
        fi
    fi
    if [ "$tried_exact" = 1 ] && headers_ok "$MODULES_DIR/build"; then
        say "kernel headers: $MODULES_DIR/build from $exact"
    else
        link_debian_headers
    fi
fi

# ---------------------------------------------------------------- 3. tracefs / debugfs
is_mounted() {  # is_mounted PATH FSTYPE
    awk -v p="$1" -v t="$2" '$2 == p && $3 == t { found = 1 } END { exit !found }' /proc/self/mounts
}
mount_fs() {  # mount_fs FSTYPE PATH
    if is_mounted "$2" "$1"; then
        say "$1 mounted at $2"
    else
        [ -d "$2" ] || die "$2 does not exist; is sysfs mounted?"
        run mount -t "$1" "$1" "$2" || die "could not mount $1 on $2 (need root with CAP_SYS_ADMIN)"
    fi
}
mount_fs tracefs /sys/kernel/tracing
mount_fs debugfs /sys/kernel/debug

# ---------------------------------------------------------------- 4. venv
[ -x "$SYS_PY" ] || die "$SYS_PY not found (Debian's python3)"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import bcc' >/dev/null 2>&1; then
    say "venv: $VENV (sees bcc)"
else
    if [ -e "$VENV" ]; then
        say "venv: $VENV is missing pieces or cannot import bcc; recreating it with $SYS_PY"
        run "$SYS_PY" -m venv --clear --system-site-packages "$VENV"
    else
        run "$SYS_PY" -m venv --system-site-packages "$VENV"
    fi
    "$VENV/bin/python" -c 'import bcc' || die "a venv made with $SYS_PY --system-site-packages cannot import bcc"
fi

# editable_mode=compat: a plain path in a .pth file. The default (an import hook that
# setuptools' .pth runs at every interpreter start) costs ~20 ms per `ebpfhooks ...`
# command, which a user's normal (non-editable) install does not pay.
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$REPO/pyproject.toml" ] \
        && ! grep -qs '^import' "$VENV"/lib/python3*/site-packages/__editable__*ebpfhooks*.pth; then
    say "venv: ebpfhooks[test] installed (stamp newer than pyproject.toml)"
else
    (cd "$REPO" && run "$VENV/bin/pip" install -q -e '.[test]' --config-settings editable_mode=compat)
    touch "$STAMP"
fi

# ---------------------------------------------------------------- 5. verify
# Run from / so the import comes from the install, not from the current directory.
bcc_version="$(cd / && "$VENV/bin/python" -c 'import bcc, ebpfhooks; print(getattr(bcc, "__version__", "unknown"))')" \
    || die "'import bcc, ebpfhooks' fails in $VENV"
say "ok: bcc $bcc_version and ebpfhooks import in $VENV"

# ---------------------------------------------------------------- 6. the VM tier
# The live tests run a second time inside Debian's distribution kernel (it has kprobes)
# booted by virtme-ng under qemu. Never a hard-coded kernel version: the newest
# /boot/vmlinuz-<ver>-<arch> is the one booted, and its own headers package is installed
# so /lib/modules/<ver>/build exists inside the guest (it shares this root filesystem).
VNG_VENV="${EBPFHOOKS_VNG_VENV:-/opt/vng}"
VNG_SPEC="virtme-ng==1.42"
vm_arch="$(dpkg --print-architecture)"
if [ "${EBPFHOOKS_SKIP_VM:-0}" = 1 ]; then
    say "VM tier: skipped (EBPFHOOKS_SKIP_VM=1)"
elif [ "$vm_arch" != amd64 ]; then
    warn "VM tier: only amd64 is supported (this is $vm_arch); set EBPFHOOKS_SKIP_VM=1"
else
    VM_PACKAGES=(qemu-system-x86 "linux-image-$vm_arch" busybox-static)
    ensure_packages "VM tier: " "${VM_PACKAGES[@]}"
    vm_kernel="$(for f in /boot/vmlinuz-*-"$vm_arch"; do [ -f "$f" ] && printf '%s\n' "$f"; done \
        | sort -V | tail -n 1)"
    [ -n "$vm_kernel" ] || die "VM tier: no /boot/vmlinuz-*-$vm_arch after installing linux-image-$vm_arch"
    vm_ver="${vm_kernel#/boot/vmlinuz-}"
    if ! headers_ok "/lib/modules/$vm_ver/build"; then
        say "VM tier: no headers for the guest kernel $vm_ver"
        apt_install "linux-headers-$vm_ver"
        headers_ok "/lib/modules/$vm_ver/build" || die "VM tier: /lib/modules/$vm_ver/build is still missing"
    fi
    say "VM tier: guest kernel $vm_kernel, headers /lib/modules/$vm_ver/build"
    vng_stamp="$VNG_VENV/.ebpfhooks-$VNG_SPEC"
    if [ -x "$VNG_VENV/bin/vng" ] && [ -f "$vng_stamp" ]; then
        say "VM tier: $VNG_SPEC in $VNG_VENV"
    else
        [ -x "$VNG_VENV/bin/python" ] || run "$SYS_PY" -m venv "$VNG_VENV"
        run "$VNG_VENV/bin/pip" install -q "$VNG_SPEC"
        touch "$vng_stamp"
    fi
fi
