# The two commands a newcomer runs are `make demo` and `make test` (see README.md).
# Both create .venv, install DevPulse with its dev tools, and build the local model rig
# (llama-server + Gemma 3 270M, cached under ~/.cache/devpulse-rig after the first build).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint rig bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

rig: $(STAMP)
	PYTHON=$(BIN)/python tests/rig/setup.sh

demo: rig
	@echo '$$ devpulse route "summarize this changelog"'
	@$(BIN)/devpulse route "summarize this changelog"
	@echo '$$ devpulse route "Design a multi-step migration plan for our billing system across three services"'
	@$(BIN)/devpulse route "Design a multi-step migration plan for our billing system across three services"
	@echo '$$ devpulse route --json "Refactor this: def add(a, b): return a+b"'
	@$(BIN)/devpulse route --json "Refactor this: def add(a, b): return a+b"
	@echo '$$ devpulse plugins'
	@$(BIN)/devpulse plugins

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: rig lint
	$(BIN)/python -m pytest

bench: rig
	$(BIN)/python bench/route_overhead.py
	$(BIN)/python bench/privacy_bench.py
	$(BIN)/python bench/estimate_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
