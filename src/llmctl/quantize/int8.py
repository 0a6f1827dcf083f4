"""`llmctl quantize --method int8`: LLM.int8() (Dettmers et al. 2022) through bitsandbytes, the one
bitsandbytes boundary of llmctl. transformers loads the fp model with BitsAndBytesConfig(load_in_8bit)
(every linear layer of the decoder blocks becomes a bitsandbytes Linear8bitLt: int8 weights, one scale
per output row; input features above the outlier threshold are multiplied in 16-bit), save_pretrained
writes it (safetensors, config.json's quantization_config), and transformers loads it back offline.

    llmctl quantize models/smollm2 --method int8 --calibration text.jsonl --out runs/int8 \
        --config recipes/quantize/int8.yaml

No calibration: the documents of --calibration are split as for gptq (same seed, same held-out
windows, so the perplexities of the methods compare) and only the held-out windows are used.
bitsandbytes 0.50.2 runs LLM.int8() on the CPU (measured); it is an optional extra (llmctl[int8]).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llmctl import hf
from llmctl.console import info
from llmctl.errors import UserError
from llmctl.quantize import report
from llmctl.quantize.calibration import Calibration
from llmctl.quantize.config import QuantizeConfig

MISSING = "method int8 needs bitsandbytes (pip install 'llmctl[int8]' or bitsandbytes==0.50.2)"


def check_installed() -> None:
    """A UserError when bitsandbytes is not installed, found without importing it (importing it
    imports torch: seconds, and a complete artifact is a no-op in well under that)."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(MISSING)


def require() -> Any:
    """bitsandbytes, imported, its per-call cast notice filtered; a UserError when it is missing."""
    try:
        import bitsandbytes
    except ImportError:
        raise UserError(MISSING) from None
    hf.quiet_bitsandbytes()
    return bitsandbytes


def quantize(model_dir: Path, out: Path, cfg: QuantizeConfig, what: str) -> float:
    """Load `model_dir` as LLM.int8() layers and save it to `out`; returns the seconds of the load,
    which is the quantization (the weights are rounded to int8 as they are read)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    require()
    qc = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=cfg.int8_threshold)
    t0 = time.perf_counter()
    # hf._load_model: the same offline, safetensors-only, no-custom-code checks as every load; no
    # .to(device) after it: device_map places the int8 weights
    model = hf._load_model(
        AutoModelForCausalLM, model_dir, what, torch.float32, None, quantization_config=qc, device_map="cpu"
    )
    seconds = time.perf_counter() - t0
    hf.save_model(model, out)
    return seconds


def load(hf_dir: Path) -> Any:
    """The int8 checkpoint loaded back through transformers (config.json's quantization_config makes
    it Linear8bitLt layers again), as `llmctl eval` loads it."""
    import torch

    require()
    return hf.load_causal_lm(hf_dir, what=f"quantized model {hf_dir}", dtype=torch.float32, device="cpu")


def int8_layers(model: Any) -> dict[str, Any]:
    """The bitsandbytes Linear8bitLt modules of a model, by name."""
    import bitsandbytes as bnb

    return {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear8bitLt)}


def layer_errors(fp_model: Any, q_model: Any) -> dict[str, float]:
    """||W_q - W||_F / ||W||_F of every int8 layer: the int8 weight times its row scale / 127
    (bitsandbytes' vector-wise absmax format) against the fp weight."""
    import torch

    out: dict[str, float] = {}
    with torch.no_grad():
        for name, module in int8_layers(q_model).items():
            w = fp_model.get_submodule(name).weight.float()
            wq = module.weight.data.float() * module.weight.SCB.float()[:, None] / 127
            out[name] = float((wq - w).norm() / w.norm())
    return out


def quantize_and_measure(
    cfg: QuantizeConfig, model_dir: Path, data: Calibration, staging: Path
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Quantize into staging/hf, then measure fp and the int8 model as reloaded from disk on the
    held-out windows; returns (metrics, per-layer errors) as the gptq path does."""
    import torch

    what = f"model {cfg.model}"
    hf_out = staging / "hf"
    metrics: dict[str, Any] = {"calibration": {**data.record, "samples": 0, "calibration_unused": True}}
    info(f"quantizing with bitsandbytes: LLM.int8(), outlier threshold {cfg.int8_threshold}")
    metrics["quantize_seconds"] = quantize(model_dir, hf_out, cfg, what)
    info(f"measuring on {len(data.held_out)} held-out windows")
    prompt = data.held_out[0][: min(32, len(data.held_out[0]))]
    fp = hf.load_causal_lm(model_dir, what=what, dtype=torch.float32, device="cpu")
    report.measure(metrics, "fp", fp, model_dir, data.held_out, prompt, cfg.report.generate_tokens)
    q = load(hf_out)
    layers = int8_layers(q)
    if not layers:  # a transformers that ignored quantization_config would measure fp as "int8"
        raise RuntimeError(f"{hf_out} loaded back without bitsandbytes Linear8bitLt layers")
    metrics["int8_layers"] = len(layers)
    errors = {"int8": layer_errors(fp, q)} if cfg.report.layer_errors else {}
    report.measure(metrics, "quantized", q, hf_out, data.held_out, prompt, cfg.report.generate_tokens)
    metrics["perplexity_increase"] = metrics["quantized_perplexity"] / metrics["fp_perplexity"] - 1
    report.finish(metrics, errors, staging)
    return metrics, errors
