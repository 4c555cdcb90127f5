#!/usr/bin/env bash
# Boot the VM tier's guest by hand and run one command in it (as root, tracefs mounted).
#
#   scripts/vm.sh -- uname -r
#   scripts/vm.sh --kernel /boot/vmlinuz-6.1.0-56-amd64 -- .venv/bin/python examples/hello_world.py --duration 3
#
# The guest is Debian's distribution kernel (default: the newest /boot/vmlinuz-*-amd64)
# under qemu with software emulation, sharing this machine's root filesystem read-only
# (with writable overlays on /etc, /tmp, /usr, /var ...). The command runs in the
# checkout; its output is printed when the guest has powered off. Options: --kernel PATH,
# --timeout SECONDS (default 900), --memory 4G, --cpus 2. scripts/setup.sh installs
# qemu, the kernel image and virtme-ng (/opt/vng).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || { echo "vm.sh: $PY missing; run scripts/setup.sh first" >&2; exit 1; }
args=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ "$#" -gt 0 ] || { echo "usage: scripts/vm.sh [--kernel PATH] [--timeout S] -- COMMAND..." >&2; exit 2; }
cd "$REPO"
exec "$PY" "$REPO/tests/vmtier.py" run "${args[@]}" -- "$@"
