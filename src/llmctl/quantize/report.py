"""What `llmctl quantize` measures and writes beside the checkpoint: held-out perplexity, size on disk
and in memory, per-layer relative reconstruction error (table + PNG), generation tokens/s, and
report.md with a loud warning when GPTQ is worse than round-to-nearest.

    from llmctl.quantize import report
    report.perplexity(model, held_out_windows)  # exp(mean next-token NLL)
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

GPTQ_WORSE = (
    "WARNING: GPTQ's held-out perplexity ({gptq:.4f}) is worse than round-to-nearest's ({rtn:.4f}) at the "
    "same bits and group size: GPTQ should never lose to RTN; check the calibration text (too little, "
    "too short, or unlike the held-out text) and the damping"
)


def perplexity(model: Any, windows: list[list[int]], batch_size: int = 8) -> float:
    """exp of the mean next-token negative log-likelihood over every window (all equal length)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            ids = torch.tensor(windows[i : i + batch_size], dtype=torch.long)
            logits = model(input_ids=ids).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(nll)
            count += ids[:, 1:].numel()
    return math.exp(total / count)


def memory_bytes(model: Any) -> int:
    """Bytes of the model's parameters and buffers (packed int32 weights, scales, zeros included)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def disk_bytes(directory: Path) -> int:
    """Bytes of the weight files (*.safetensors) of a model directory."""
    return sum(f.stat().st_size for f in directory.glob("*.safetensors"))


def tokens_per_s(model: Any, prompt: list[int], new_tokens: int) -> float:
    """Greedy generation speed: new_tokens tokens after the prompt, timed after a 1-token warm-up."""
    import torch

    ids = torch.tensor([prompt], dtype=torch.long)
    mask = torch.ones_like(ids)
    kw = {"do_sample": False, "pad_token_id": 0, "attention_mask": mask}
    with torch.no_grad():
        model.generate(ids, max_new_tokens=1, **kw)
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
    return new_tokens / (time.perf_counter() - t0)


def layer_errors(fp_model: Any, q_model: Any) -> dict[str, float]:
    """||W_q - W||_F / ||W||_F of every quantized linear layer: the quantized module's dequantized
    weight (gptqmodel's dequantize_weight, [in, out]) against the fp model's weight ([out, in])."""
    import torch

    out: dict[str, float] = {}
    with torch.no_grad():
        for name, module in q_model.named_modules():
            if not hasattr(module, "dequantize_weight") or not hasattr(module, "qweight"):
                continue
            for buf in ("wf_unsqueeze_zero", "wf_unsqueeze_neg_one"):  # shift amounts; a forward
                b = getattr(module, buf, None)  # pass may have cast them to the compute dtype
                if b is not None and b.is_floating_point():
                    setattr(module, buf, b.to(torch.int32))
            w = fp_model.get_submodule(name).weight.float()
            wq = module.dequantize_weight().float().T  # GPTQ's layout is [in, out], even when square
            out[name] = float((wq - w).norm() / w.norm())
    return out


def plot_layer_errors(errors: dict[str, dict[str, float]], path: Path) -> None:
    """One bar per quantized layer and method (gptq, rtn): relative reconstruction error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(errors.values())))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    width = 0.8 / len(errors)
    for k, (method, errs) in enumerate(errors.items()):
        ax.bar([i + k * width for i in range(len(names))], [errs[n] for n in names], width, label=method)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels(
        [n.removeprefix("model.").replace("layers.", "L") for n in names], rotation=90, fontsize=7
    )
    ax.set_ylabel("||W_q - W|| / ||W||")
    ax.set_title("per-layer relative reconstruction error")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def measure(
    metrics: dict[str, Any], key: str, model: Any, directory: Path, held_out: list[list[int]],
    prompt: list[int], generate_tokens: int,
) -> None:  # fmt: skip
    """Held-out perplexity, weights on disk and in memory, and (generate_tokens > 0) tokens/s of one
    model, as metrics[f"{key}_..."]: the same measures for fp, quantized and RTN, gptq and int8."""
    metrics[f"{key}_perplexity"] = perplexity(model, held_out)
    metrics[f"{key}_disk_bytes"] = disk_bytes(directory)
    metrics[f"{key}_memory_bytes"] = memory_bytes(model)
    if generate_tokens:
        metrics[f"{key}_tokens_per_s"] = tokens_per_s(model, prompt, generate_tokens)


def finish(metrics: dict[str, Any], errors: dict[str, dict[str, float]], staging: Path) -> None:
    """After every model is measured: the per-layer error plot and the compression ratio."""
    if errors:
        plot_layer_errors(errors, staging / "layer_errors.png")
        metrics["layer_errors"] = errors
    metrics["compression"] = metrics["fp_disk_bytes"] / max(1, metrics["quantized_disk_bytes"])


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _num(v: float | None, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt)


def markdown(metrics: dict[str, Any], errors: dict[str, dict[str, float]], config: dict[str, Any]) -> str:
    """report.md: settings, the before/after table, the warning if any, the per-layer table."""
    m = metrics
    cols = ["fp", config["method"], *(["rtn"] if "rtn_perplexity" in m and config["method"] != "rtn" else [])]
    key = {"fp": "fp", config["method"]: "quantized", "rtn": "rtn"}
    cal = m["calibration"]
    if config["method"] == "int8":
        lines = [
            "# llmctl quantize: int8 (LLM.int8() through bitsandbytes)",
            "",
            f"Model `{config['model']}`; 8-bit weights, one scale per output row, input features above "
            f"{config['int8_threshold']} in 16-bit ({m.get('int8_layers', '?')} Linear8bitLt layers).",
            f"No calibration; perplexity on {cal['held_out_windows']} held-out windows of {cal['seq_len']} "
            f"tokens from {cal['held_out_documents']} documents of "
            f"`{cal['source']}` (seed {cal['seed']}: the split gptq would use).",
            "",
        ]
    else:
        lines = [
            f"# llmctl quantize: {config['method']} {config['bits']}-bit, group size {config['group_size']}",
            "",
            f"Model `{config['model']}`; desc_act={config['desc_act']}, sym={config['sym']}, "
            f"damp={config['damp']}.",
            f"Calibration: {cal['samples']} x {cal['seq_len']} tokens from {cal['calibration_documents']} "
            f"documents of `{cal['source']}` (seed {cal['seed']}); perplexity on "
            f"{cal['held_out_windows']} held-out windows of {cal['held_out_documents']} other documents.",
            "",
        ]
    if m.get("warning"):
        lines += [f"> **{m['warning']}**", ""]
    lines += ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    rows = [
        ("held-out perplexity", "perplexity", _num),
        ("weights on disk", "disk_bytes", _mb),
        ("in memory", "memory_bytes", _mb),
        ("generation tokens/s", "tokens_per_s", lambda v: _num(v, ".1f")),
    ]
    for label, name, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(m.get(f"{key[c]}_{name}")) for c in cols) + " |")
    lines += [
        "",
        f"Quantization time: {m['quantize_seconds']:.1f} s"
        + (f" (RTN: {m['rtn_quantize_seconds']:.1f} s)" if "rtn_quantize_seconds" in m else "")
        + f"; perplexity increase over fp: {m['perplexity_increase']:+.2%}"
        + (f" (RTN: {m['rtn_perplexity_increase']:+.2%})" if "rtn_perplexity_increase" in m else "")
        + ".",
        "",
    ]
    if errors:
        methods = list(errors)
        lines += [
            "## Per-layer relative reconstruction error ||W_q - W|| / ||W||",
            "",
            "![per-layer error](layer_errors.png)",
            "",
            "| layer | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        for name in errors[methods[0]]:
            lines.append(f"| {name} | " + " | ".join(f"{errors[k][name]:.5f}" for k in methods) + " |")
    return "\n".join(lines) + "\n"
