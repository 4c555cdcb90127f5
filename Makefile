# ebpfhooks: everyday commands. Run as root (bcc needs it); every target sets up first.
#
#   make demo     set up, then run examples/hello_world.py for 5 seconds
#   make test     set up, then tests on both tiers (pytest --vm), lint (ruff) and type check
#                 (mypy); a complete run rewrites docs/kernels.md (--write-kernels-doc)
#   make test-host   set up, then pytest on this machine's kernel only (no --vm: nothing boots)
#   make test-vm     set up, then only the VM tier: the live tests inside Debian's kernel under
#                    qemu (--vm -m vm); VM_KERNEL=/path/to/vmlinuz boots another image (--kernel)
#   make lint     ruff + mypy only
#   make setup    only scripts/setup.sh (idempotent; fast when everything is there)
#   make bench    every number in docs/performance.md (bench/run_all.py; ~30 min)
#
#   make test PYTEST_ARGS='-k uprobe -x'   extra pytest arguments (a partial run: the
#                                          tracked docs/kernels.md is left alone)
#   EBPFHOOKS_SKIP_VM=1 make test          skip the VM tier on purpose (no qemu here)
#
# Plain `pytest tests/test_x.py` is the host tier only: the VM tier runs when asked (--vm).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
VM_KERNEL ?=
# --kernel PATH for the VM tier (default: the newest /boot/vmlinuz-*-amd64)
PYTEST_VM_ARGS := $(if $(VM_KERNEL),--kernel $(VM_KERNEL),)
DEMO_DURATION ?= 5
# CI runs in a fresh clone: no pytest cache there.
PYTEST_CI_ARGS := $(if $(filter true 1,$(CI)),-p no:cacheprovider,)

.PHONY: setup demo test test-host test-vm lint bench

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
define run_pytest
echo "$(PY) -m pytest $(PYTEST_CI_ARGS) $(PYTEST_VM_ARGS) $(1) $(PYTEST_ARGS)"; \
rc=0; $(PY) -m pytest $(PYTEST_CI_ARGS) $(PYTEST_VM_ARGS) $(1) $(PYTEST_ARGS) || rc=$$?; \
if [ $$rc -eq 5 ]; then echo "make: ERROR: pytest collected no tests (exit 5)" >&2; fi; \
exit $$rc
endef
RUFF := $(VENV)/bin/ruff check $(wildcard ebpfhooks tests examples)
MYPY := $(VENV)/bin/mypy

setup:
	bash scripts/setup.sh

# An idle machine opens few files: a background loop reads /etc/os-release twice a
# second while the demo runs, so there are always real opens to show.
demo: setup
	@( for i in $$(seq 1 $$(( $(DEMO_DURATION) * 2 + 4 ))); do sleep 0.5; \
	   cat /etc/os-release > /dev/null; done ) &
	$(PY) examples/hello_world.py --duration $(DEMO_DURATION)

# Both tiers in one pytest run: the host tests first, then the VM twins (tests/vmtier.py);
# docs/kernels.md is rewritten only when the run was complete (nothing deselected).
test: setup
	@$(call run_pytest,--vm --write-kernels-doc)
	$(RUFF)
	$(MYPY)

test-host: setup
	@$(call run_pytest,)

test-vm: setup
	@$(call run_pytest,--vm -m vm)

lint: setup
	$(RUFF)
	$(MYPY)

bench: setup
	$(PY) bench/run_all.py --plot docs/bench-overhead.png
