# The two commands a newcomer runs are `make demo` and `make test` (see README.md).
# Both create .venv, install DevPulse with its dev tools, and build the local model rig
# (llama-server, Gemma 3 270M and SmolLM2 135M Instruct, cached under ~/.cache/devpulse-rig
# after the first build).

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

# The main job on the embedded default: no Ollama, no API key. The rig's llama-server serves
# SmolLM2 135M Instruct on 127.0.0.1:8080 (the default local backend) while DevPulse routes,
# answers and keeps books. The answers stop by themselves; a 135M model is rarely right.
demo: rig
	@$(BIN)/python -m tests.rig.serve --port 8080 -- sh -c '\
	  export PATH="$(CURDIR)/$(BIN):$$PATH" XDG_DATA_HOME="$(CURDIR)/.demo"; set -x; \
	  devpulse route "A train travels 180 km in 2 hours, then 240 km in 3 hours. How many km per hour did it average?" && \
	  devpulse route --json "Refactor this: DB_PASSWORD = \"x9%Kq2mPz!7vLr\"" && \
	  devpulse ask "Summarize in one line: DevPulse routes LLM requests between local and cloud." && \
	  devpulse ask --stream "Draft a two-line release note for version 1.2." && \
	  devpulse cost && devpulse ai --before-load 1000'

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
	$(BIN)/python bench/dispatch_overhead.py
	$(BIN)/python bench/astream_concurrency.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/babysit.py
	$(BIN)/python bench/routing_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
