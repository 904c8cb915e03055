# floy: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.floy-installed
# Parallel test workers; ansible runs are CPU-bound, two cores here.
PYTEST_WORKERS ?= 2
SHELL := /bin/bash

.PHONY: venv demo test lint typecheck unit soak bench clean

# bootstrap.sh says what it does in its own lines; make need not echo the commands.
$(STAMP): pyproject.toml scripts/bootstrap.sh
	@bash scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@$(BIN)/python -m sample.demo

# ruff, then the layer contracts of pyproject.toml (DESIGN.md section 7) with import-linter.
lint: $(STAMP)
	$(BIN)/ruff check orchestrator sample tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Everything but the chaos soak on two workers, then the soak tier alone (its faults and
# timings are its own, and it never competes with the other tiers for the two cores).
test: $(STAMP) lint typecheck
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not soak"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m soak tests/soak

# The chaos soak alone, longer (FLOY_SOAK_SEED=N replays a run's choices).
FLOY_SOAK_SECONDS ?= 600
soak: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" FLOY_SOAK_SECONDS=$(FLOY_SOAK_SECONDS) $(BIN)/pytest -m soak tests/soak

# Every benchmark, full sizes; each script's output is kept in bench/results/, and the
# summary lines are printed together at the end.
bench: $(STAMP)
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do \
	  name=$$(basename $$b .py); echo "== $$name"; \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python $$b 2>&1 | tee bench/results/$$name.log; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done
	@echo; echo "== summary ($$(date -u +%Y-%m-%d), $$(nproc) cores)"
	@for f in bench/results/bench_*.log; do \
	  printf '%-18s %s\n' "$$(basename $$f .log)" "$$(grep '^summary:' $$f | tail -1 | cut -c10-)"; \
	done

clean:
	rm -rf .floy .pytest_cache .mypy_cache .ruff_cache
