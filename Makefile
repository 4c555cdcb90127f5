# ebpfhooks: everyday commands. Run as root (bcc needs it); every target sets up first.
#
#   make demo     set up, then run examples/hello_world.py for 5 seconds
#   make test     set up, then tests (pytest), lint (ruff) and type check (mypy)
#   make lint     ruff + mypy only
#   make setup    only scripts/setup.sh (idempotent; fast when everything is there)
#   make bench    every number in docs/performance.md (bench/run_all.py; ~15 min)
#
#   make test PYTEST_ARGS='-k uprobe -x'   extra pytest arguments

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_DURATION ?= 5
# CI runs in a fresh clone: no pytest cache there.
PYTEST_CI_ARGS := $(if $(filter true 1,$(CI)),-p no:cacheprovider,)

.PHONY: setup demo test lint bench

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
define run_pytest
echo "$(PY) -m pytest $(PYTEST_CI_ARGS) $(PYTEST_ARGS)"; \
rc=0; $(PY) -m pytest $(PYTEST_CI_ARGS) $(PYTEST_ARGS) || rc=$$?; \
if [ $$rc -eq 5 ]; then echo "make: ERROR: pytest collected no tests (exit 5)" >&2; fi; \
exit $$rc
endef
RUFF := $(VENV)/bin/ruff check $(wildcard ebpfhooks tests examples)
MYPY := $(VENV)/bin/mypy

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) examples/hello_world.py --duration $(DEMO_DURATION)

test: setup
	@$(run_pytest)
	$(RUFF)
	$(MYPY)

lint: setup
	$(RUFF)
	$(MYPY)

bench: setup
	$(PY) bench/run_all.py --plot docs/bench-overhead.png
