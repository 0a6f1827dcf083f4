"""`llmctl quantize`: post-training quantization (survey 5.4) with gptqmodel: GPTQ on calibration
text, or round-to-nearest, to a GPTQ checkpoint that gptqmodel and transformers both load back;
or LLM.int8() through bitsandbytes (--method int8, llmctl.quantize.int8).

    llmctl quantize runs/demo/dpo --calibration runs/demo/dedup --out runs/demo/quantize \
        --config recipes/quantize/demo.yaml
    llmctl quantize models/smollm2 --calibration text.jsonl --bits 4 --group-size 64 --out runs/q4

Before the library is called: the model's config and every quantized layer's width are checked
(a group size that does not divide a layer's in_features is exit 2 naming the layer and the valid
sizes; the CPU kernel would fail deep inside), and the calibration text is read, split by
document and cut into seeded windows (llmctl.quantize.calibration). Then gptqmodel quantizes
(llmctl.quantize.engine), and the report measures fp vs quantized (vs RTN at the same bits and
groups) on held-out text (llmctl.quantize.report).
Artifact: hf/ (the GPTQ checkpoint, or int8's bitsandbytes one; tokenizer and chat template),
report.md, layer_errors.png, logs/ (gptqmodel's own output), metrics in manifest.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmctl import artifacts, hf
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info, warn
from llmctl.errors import UserError
from llmctl.quantize import calibration, engine, int8, report
from llmctl.quantize.config import QuantizeConfig

PACK = 32  # input features per packed int32 word (gptqmodel's pack_block)
POWERS = (16, 32, 64, 128, 256, 512, 1024)


def run(cfg: QuantizeConfig) -> Manifest:
    """Quantize `cfg.model` and commit `cfg.run.out` (a complete one is a no-op unless --force)."""
    out = cfg.run.out_dir("quantize")
    if not cfg.model:
        raise UserError(
            "quantize needs MODEL: a Hugging Face causal-LM directory or an llmctl artifact with hf/"
        )
    if cfg.method == "int8":
        int8.check_installed()  # bitsandbytes is an optional extra: exit 2 before anything is written
    model_dir = hf.model_dir(cfg.model)
    what = f"model {cfg.model}"
    if not cfg.calibration.data:
        raise UserError("quantize needs calibration text: --calibration DATA (or calibration.data)")
    if not Path(cfg.calibration.data).exists():
        raise UserError(f"calibration.data: {cfg.calibration.data} does not exist")
    inputs = [Path(cfg.model), Path(cfg.calibration.data)]
    # first: a complete artifact is a no-op in a second, before transformers is even imported
    art = artifacts.begin("quantize", out, config=_recorded(cfg), inputs=inputs, force=cfg.run.force)
    if art.done:
        return art.manifest  # type: ignore[return-value]
    with artifacts.discard_on_user_error(art):
        with engine.filtered_stderr():  # the checks before gptqmodel is called: exit 2, nothing left
            config = hf.load_config(model_dir, what=what)
            if getattr(config, "quantization_config", None):
                raise UserError(f"{what} is already quantized (config.json has quantization_config)")
        tokenizer = hf.load_tokenizer(model_dir, what=what)
        context = getattr(config, "max_position_embeddings", None)
        if cfg.method == "int8":  # bitsandbytes takes any layer width: no group-size checks
            data = calibration.build(cfg.calibration, tokenizer, context)
            info(f"held out: {len(data.held_out)} windows of {data.record['held_out_documents']} documents")
            metrics, errors = int8.quantize_and_measure(cfg, model_dir.resolve(), data, art.staging)
            hf.save_tokenizer(tokenizer, art.staging / "hf")
            return _commit(cfg, art, metrics, errors)
        with engine.filtered_stderr():
            widths = linear_widths(model_dir, what, cfg.keep_fp)
            if not widths:
                raise UserError(f"keep_fp={cfg.keep_fp} leaves no linear layer of {what} to quantize")
            check_group_size(widths, cfg.group_size)
            if cfg.keep_fp:
                same_in_every_block(widths, cfg.keep_fp)
        data = calibration.build(cfg.calibration, tokenizer, context)
        info(
            f"calibration: {len(data.samples)} x {data.record['seq_len']} tokens; held out: "
            f"{len(data.held_out)} windows of {data.record['held_out_documents']} other documents"
        )
        metrics, errors = quantize_and_measure(cfg, model_dir, tokenizer, data, art.staging, list(widths))
        return _commit(cfg, art, metrics, errors)


def _commit(cfg: QuantizeConfig, art: Any, metrics: dict[str, Any], errors: dict[str, Any]) -> Manifest:
    """report.md, then the manifest with the metrics and the one-line summary."""
    (art.staging / "report.md").write_text(report.markdown(metrics, errors, _recorded(cfg)))
    method = "int8 (LLM.int8())" if cfg.method == "int8" else f"{cfg.method} {cfg.bits}-bit g{cfg.group_size}"
    summary = {
        "method": method,
        "ppl_fp": round(metrics["fp_perplexity"], 4),
        "ppl_quantized": round(metrics["quantized_perplexity"], 4),
        **({"ppl_rtn": round(metrics["rtn_perplexity"], 4)} if "rtn_perplexity" in metrics else {}),
        "size_mb": round(metrics["quantized_disk_bytes"] / 1e6, 2),
        **({"warning": "GPTQ WORSE THAN RTN"} if metrics.get("warning") else {}),
    }
    return art.commit(metrics, summary)


def linear_widths(model_dir: Path, what: str, keep_fp: list[str] | None = None) -> dict[str, int]:
    """in_features of every linear layer gptqmodel quantizes (those inside the decoder blocks, less
    the keep_fp ones; the embeddings and lm_head stay in full precision), from a weightless copy."""
    import re

    import torch

    model = hf.skeleton_causal_lm(model_dir, what=what)
    return {
        name: m.in_features
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
        and ".layers." in f".{name}"
        and not any(re.search(r, name) for r in keep_fp or [])
    }


def same_in_every_block(widths: dict[str, int], keep_fp: list[str]) -> None:
    """Exit 2 unless keep_fp leaves the same modules quantized in every block: transformers' GPTQ
    loader takes one modules_in_block_to_quantize list for all blocks."""
    import re

    blocks: dict[str, set[str]] = {}
    for name in widths:
        m = re.match(r"^(.*?\.layers\.\d+)\.(.+)$", name)
        if m:
            blocks.setdefault(m.group(1), set()).add(m.group(2))
    if len({frozenset(s) for s in blocks.values()}) > 1:
        raise UserError(
            f"keep_fp={keep_fp} keeps different modules in different blocks; transformers loads a GPTQ "
            "checkpoint with one list of quantized modules for every block: match module names "
            "(e.g. 'mlp\\.down_proj'), not layer numbers"
        )


def check_group_size(widths: dict[str, int], group_size: int) -> None:
    """Exit 2 naming the first layer whose in_features the group size does not divide, and the
    group sizes that divide them all (the CPU kernel fails on a partial group)."""
    for name, width in widths.items():
        if width % PACK:
            raise UserError(
                f"{name}.in_features={width} is not a multiple of {PACK}: gptqmodel packs {PACK} input "
                "features per int32 word, so this model cannot be stored as a GPTQ checkpoint"
            )
    if group_size == -1:
        return
    for name, width in widths.items():
        if width % group_size:
            valid = [g for g in POWERS if all(w % g == 0 for w in widths.values())]
            sizes = ", ".join(map(str, [*valid, -1]))
            raise UserError(
                f"group_size={group_size} does not divide {name}.in_features={width}; "
                f"group sizes that divide every quantized layer of this model: {sizes}"
            )


def quantize_and_measure(
    cfg: QuantizeConfig,
    model_dir: Path,
    tokenizer: Any,
    data: calibration.Calibration,
    staging: Path,
    quantized: list[str],
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Quantize into staging/hf (and RTN into a scratch dir when compared), measure fp, quantized
    and RTN on the held-out windows; returns (metrics, per-layer errors by method)."""
    engine.prepare_env(cfg)
    # the library runs in staging (engine.library changes directory): relative paths would point
    # elsewhere there (a relative model path even reads as a hub repo id)
    model_dir, staging = Path(model_dir).resolve(), Path(staging).resolve()
    log = staging / "logs" / "gptqmodel.log"
    hf_out = staging / "hf"
    metrics: dict[str, Any] = {"calibration": data.record}
    info(f"quantizing with gptqmodel: {cfg.method} {cfg.bits}-bit, group size {cfg.group_size}")
    with engine.library(log, cwd=staging):
        metrics["quantize_seconds"] = engine.quantize(model_dir, hf_out, cfg, cfg.method, data.samples)
    if (hf_out / "quant_log.csv").exists():  # the library's per-layer log: beside its other logs
        shutil.move(str(hf_out / "quant_log.csv"), staging / "logs")
    hf.save_tokenizer(tokenizer, hf_out)  # the model's own tokenizer files and chat template, as given
    if cfg.keep_fp:
        engine.mark_kept_layers(hf_out, quantized)
    rtn_dir = staging / ".rtn"
    compare = cfg.report.compare_rtn and cfg.method != "rtn"
    if compare:
        info("quantizing with round-to-nearest at the same bits and groups (the baseline)")
        with engine.library(log, cwd=staging):
            metrics["rtn_quantize_seconds"] = engine.quantize(model_dir, rtn_dir, cfg, "rtn", [])
        if cfg.keep_fp:
            engine.mark_kept_layers(rtn_dir, quantized)
    info(f"measuring on {len(data.held_out)} held-out windows")
    prompt = data.held_out[0][: min(32, len(data.held_out[0]))]
    errors: dict[str, dict[str, float]] = {}
    import torch

    with engine.library(log, cwd=staging):
        fp = hf.load_causal_lm(model_dir, what=f"model {cfg.model}", dtype=torch.float32, device="cpu")
        report.measure(metrics, "fp", fp, model_dir, data.held_out, prompt, cfg.report.generate_tokens)
        for key, directory in (("quantized", hf_out), *((("rtn", rtn_dir),) if compare else ())):
            q = engine.load_quantized(directory)
            if cfg.report.layer_errors:  # before any forward pass, on the weights as loaded
                errors[cfg.method if key == "quantized" else key] = report.layer_errors(fp, q)
            tokens = cfg.report.generate_tokens if key != "rtn" else 0  # RTN: quality only
            report.measure(metrics, key, q, directory, data.held_out, prompt, tokens)
            del q
    shutil.rmtree(rtn_dir, ignore_errors=True)
    fp_ppl = metrics["fp_perplexity"]
    metrics["perplexity_increase"] = metrics["quantized_perplexity"] / fp_ppl - 1
    if compare:
        metrics["rtn_perplexity_increase"] = metrics["rtn_perplexity"] / fp_ppl - 1
        worse = metrics["quantized_perplexity"] > metrics["rtn_perplexity"] * (1 + cfg.report.rtn_tolerance)
        if cfg.method == "gptq" and worse:
            metrics["warning"] = report.GPTQ_WORSE.format(
                gptq=metrics["quantized_perplexity"], rtn=metrics["rtn_perplexity"]
            )
            warn(metrics["warning"])
    report.finish(metrics, errors, staging)
    return metrics, errors


def _recorded(cfg: QuantizeConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run", None)
    return d
