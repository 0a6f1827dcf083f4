#!/usr/bin/env bash
# The GPU path end to end, on a machine with an NVIDIA GPU (about 3-5 minutes on an H100-class
# GPU after the install):
#
#   bash scripts/gpu_check.sh [WORKDIR]          # default WORKDIR: runs/gpu-check
#
# 1. installs what it needs (make setup; a CUDA torch if the venv's torch cannot see the GPU)
# 2. tokenizes the shipped sample corpus (tiny BPE recipe)
# 3. pre-trains gpt-125m in bf16 for 50 steps (TransformerEngine layers when TE imports)
# 4. exports hf/ (on the CPU in fp32: the logits parity check) -- part of `llmctl pretrain`
# 5. evaluates the export on CUDA
# 6. runs the tests marked `gpu`
# and prints tokens/s, MFU (with the peak it used) and the parity figure.
#
# Env: PY (an interpreter with llmctl installed; default: make setup's .venv), SKIP_SETUP=1 (do
# not run make setup), TORCH_INDEX (where a CUDA torch comes from if one is needed),
# SKIP_TESTS=1 (do not run pytest -m gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-runs/gpu-check}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}
start=$(date +%s)

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi -L failed)" >&2
  exit 1
fi

if [[ -z "${PY:-}" ]]; then
  [[ "${SKIP_SETUP:-0}" == 1 ]] || make setup
  PY=.venv/bin/python
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  version=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
  echo "gpu_check: torch $("$PY" -c 'import torch; print(torch.__version__)') cannot see the GPU;" \
    "installing torch==$version from $TORCH_INDEX"
  "$PY" -m pip install -q --force-reinstall --no-deps "torch==$version" --index-url "$TORCH_INDEX"
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'still no CUDA in torch'"
fi
"$PY" - <<'EOF'
import importlib.util, torch
te = importlib.util.find_spec("transformer_engine") is not None
print(f"gpu_check: torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
      f"TransformerEngine {'installed: TE layer spec' if te else 'absent: local layer spec'}")
EOF
LLMCTL=("$PY" -m llmctl.cli)
mkdir -p "$WORK"

# 2. token data: the shipped sample (about 1 MB of text) with the demo's small BPE
"${LLMCTL[@]}" tokenize data/sample --out "$WORK/tok" --config recipes/tokenize/tiny.yaml -q

# 3 + 4. gpt-125m (12 x 768, seq 1024, global batch 64) in bf16, 50 steps, then the export
t0=$(date +%s)
"${LLMCTL[@]}" pretrain "$WORK/tok" --out "$WORK/pt" --config recipes/pretrain/gpt-125m.yaml --force \
  --set train.steps=50 --set train.bf16=true --set optim.warmup_steps=5 --set train.log_interval=10 \
  --set train.eval_interval=50 --set train.save_interval=50 --set model.layer_spec=auto
echo "gpu_check: pretrain + export took $(($(date +%s) - t0)) s"

# 5. the export, evaluated on the GPU
"${LLMCTL[@]}" eval "$WORK/pt" --out "$WORK/eval" --force --device cuda --dtype bfloat16 \
  --tasks capitals,sotu-quotes-ppl --limit 50 -q

"$PY" - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
pt = json.loads((work / "pt" / "manifest.json").read_text())["metrics"]
ev = json.loads((work / "eval" / "results.json").read_text())
model = next(iter(ev["models"].values()))
mfu = "n/a" if pt["mfu"] is None else f"{pt['mfu']:.1%}"
print("gpu_check results")
print(f"  device          {pt['device']} ({pt['matmul_dtype']}), layout {pt['layout']}")
print(f"  tokens/s        {pt['tokens_per_s']:,.0f}")
print(f"  MFU             {mfu}  [{pt['peak_source']}]")
print(f"  parity          max |logit diff| {pt['hf_max_abs_logit_diff']:.2e} (CPU, fp32 vs fp32)")
print(f"  loss            {pt['first_train_loss']:.3f} -> {pt['final_train_loss']:.3f}")
print(f"  eval            on {model['device']} in {model['dtype']}:",
      json.dumps(json.loads((work / "eval" / "manifest.json").read_text())["summary"]))
assert pt["hf_max_abs_logit_diff"] <= 1e-4 and model["device"] == "cuda"
EOF

# 6. the tests that need a GPU (they skip without one)
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  "$PY" -m pytest -q -m gpu tests/integration/test_gpu.py
fi
echo "gpu_check: done in $(($(date +%s) - start)) s"
