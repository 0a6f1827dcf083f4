"""`llmctl pretrain`: megatron-core pre-training with TP/PP/DP (survey 4.2-4.3).

    llmctl pretrain runs/demo/tokenize --out runs/demo/pretrain --config recipes/pretrain/tiny.yaml
    llmctl pretrain runs/tok --out runs/pt -c recipes/pretrain/tiny.yaml --nproc 2 --set parallel.tensor=2

The ranks run `llmctl.pretrain.train` (under torchrun when --nproc > 1) with checkpoints in the
staging directory, so `--resume` continues a killed or time-limited run. Then
`llmctl.pretrain.export` writes `hf/` (LlamaForCausalLM, safetensors, the tokenizer) and checks
its logits against megatron's. Metrics: losses, perplexity, tokens/s, MFU, the loss curve.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from llmctl import artifacts, launch
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info
from llmctl.errors import Incomplete, UserError
from llmctl.formats import tokens
from llmctl.pretrain import mfu as mfumod
from llmctl.pretrain.config import ExportConfig, PretrainConfig


def run(cfg: PretrainConfig) -> Manifest | None:
    """Train on the tokenize artifact `cfg.run.inputs[0]`, export hf/, commit. Under torchrun
    (`torchrun ... -m llmctl pretrain`, or srun + torchrun on SLURM) this process is one rank and
    trains in place; otherwise it starts `cfg.nproc` ranks itself. Returns the manifest (None on
    ranks other than 0)."""
    out = cfg.run.out_dir("pretrain")
    force, resume = cfg.run.force, cfg.run.resume
    if len(cfg.run.inputs) != 1:
        raise UserError(f"pretrain reads one tokenize artifact, got {len(cfg.run.inputs)} inputs")
    tokenized = cfg.run.inputs[0]
    tokens.check(tokenized)
    if cfg.train.init_checkpoint and not Path(cfg.train.init_checkpoint).is_dir():
        raise UserError(f"train.init_checkpoint {cfg.train.init_checkpoint}: no such checkpoint directory")
    if cfg.train.init_checkpoint:
        verify_checkpoint(Path(cfg.train.init_checkpoint), "train.init_checkpoint")
    if launch.under_torchrun():
        return _run_as_rank(cfg, tokenized, out, force=force, resume=resume)
    launch.check_loopback()
    art, spec = _begin(cfg, tokenized, out, force=force, resume=resume)
    if art.done:
        return art.manifest
    _launch(cfg.nproc, "llmctl.pretrain.train", art.staging.resolve() / "spec.json")
    return _finish(cfg, art, spec)


def _begin(
    cfg: PretrainConfig, tokenized: Path, out: Path, *, force: bool, resume: bool
) -> tuple[artifacts.StageRun, dict[str, Any]]:
    layer_spec = _layer_spec(cfg.model.layer_spec)
    recorded = to_dict(cfg)
    art = artifacts.begin("pretrain", out, config=recorded, inputs=[tokenized], force=force, resume=resume)
    if art.done:
        return art, {}
    staging = art.staging.resolve()
    latest = staging / "checkpoints" / "latest.txt"
    if art.resumed and latest.is_file():
        verify_checkpoint(staging / "checkpoints" / latest.read_text().strip(), "--resume")
    (staging / "incomplete.json").unlink(missing_ok=True)
    spec = {
        "config": recorded,
        "tokenized": str(tokenized.resolve()),
        "staging": str(staging),
        "resume": art.resumed,
        "layer_spec": layer_spec,
    }
    (staging / "spec.json").write_text(json.dumps(spec, indent=2))
    return art, spec


def _finish(cfg: PretrainConfig, art: artifacts.StageRun, spec: dict[str, Any]) -> Manifest:
    staging = art.staging.resolve()
    if (staging / "incomplete.json").is_file():
        step = json.loads((staging / "incomplete.json").read_text())["step"]
        raise Incomplete(
            f"stopped after step {step} of {cfg.train.steps}; run again with --resume to continue"
        )
    latest = staging / "checkpoints" / (staging / "checkpoints" / "latest.txt").read_text().strip()
    export = {**spec, "checkpoint": str(latest), "hf_out": str(staging / "hf")}
    (staging / "export-spec.json").write_text(json.dumps(export, indent=2))
    info("exporting hf/ (LlamaForCausalLM) and checking its logits against megatron's")
    _launch(1, "llmctl.pretrain.export", staging / "export-spec.json")
    shutil.rmtree(staging / "data-cache", ignore_errors=True)  # megatron's index cache: rebuilt on demand
    metrics = _metrics(cfg, staging, tokens.read_blend(Path(spec["tokenized"])))
    summary = {
        k: metrics[k] for k in ("steps", "final_train_loss", "valid_loss", "valid_ppl", "tokens_per_s", "mfu")
    }
    return art.commit(metrics, summary)


def _run_as_rank(
    cfg: PretrainConfig, tokenized: Path, out: Path, *, force: bool, resume: bool
) -> Manifest | None:
    """One torchrun worker: rank 0 owns the artifact (begin, export, commit) and hands the spec to
    the others; every rank trains in this process."""
    import torch
    import torch.distributed as dist

    from llmctl.console import set_quiet
    from llmctl.pretrain.train import EXIT_INCOMPLETE, Trainer

    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    if cfg.nproc != world:  # the CLI sets nproc from WORLD_SIZE, so that the config is validated for it
        raise UserError(f"nproc={cfg.nproc} under torchrun, which started {world} processes")
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if gpu else "gloo")
    if rank != 0:
        set_quiet(True)
    message: list[Any] = [None]
    art = None
    if rank == 0:
        try:
            art, spec = _begin(cfg, tokenized, out, force=force, resume=resume)
            message = [{"done": True} if art.done else spec]
        except UserError as e:
            message = [{"error": str(e)}]
    dist.broadcast_object_list(message, src=0)
    got = message[0]
    if "error" in got or "done" in got:
        dist.destroy_process_group()
        if "error" in got:
            raise UserError(got["error"])
        return art.manifest if art is not None else None
    try:
        Trainer(got).train(resume=bool(got["resume"]))
    except SystemExit as e:
        if e.code != EXIT_INCOMPLETE:
            raise
    dist.barrier()
    dist.destroy_process_group()
    if rank != 0:
        return None
    return _finish(cfg, art, got)


def verify_checkpoint(path: Path, what: str) -> None:
    """Exit 2 naming the file when a checkpoint's files do not match the SHA256SUMS written after
    its save (a corrupt or truncated .distcp); checkpoints from before SHA256SUMS are trusted."""
    from llmctl.artifacts import sha256_regular
    from llmctl.megatron import checkpoint

    sums = path / "SHA256SUMS"
    if not sums.is_file():
        info(f"{path}: no SHA256SUMS (an older checkpoint); not verified")
        checkpoint.verify(path)  # its pickles still load without foreign code, or exit 2
        return
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    fix = "delete that checkpoint directory (and fix latest.txt) to use an earlier one"
    for name, digest in listed.items():
        f = path / name
        if ".." in Path(name).parts or sha256_regular(f) != digest:
            state = "missing" if not f.exists() else "corrupt or truncated (sha256 differs from SHA256SUMS)"
            raise UserError(f"{what}: checkpoint file {f} is {state}; {fix}")
    extra = sorted(
        f.relative_to(path).as_posix()
        for f in path.rglob("*")
        if f.is_file() and f.name != "SHA256SUMS" and f.relative_to(path).as_posix() not in listed
    )
    if extra:
        raise UserError(f"{what}: checkpoint file {path / extra[0]} is not in its SHA256SUMS; {fix}")
    checkpoint.verify(path)  # matching hashes are no proof against a crafted checkpoint


def _layer_spec(kind: str) -> str:
    import torch

    from llmctl.megatron import model

    gpu = torch.cuda.is_available()
    spec = model.resolve_layer_spec(kind, gpu=gpu, te=model.has_transformer_engine())
    info(f"layer spec: {spec}" + ("" if kind != "auto" else " (auto)"))
    return spec


def _launch(nproc: int, module: str, spec: Path) -> None:
    returncode, caught = launch.run(launch.command(nproc, module, str(spec)), nproc)
    if caught == signal.SIGINT:
        raise KeyboardInterrupt  # the CLI prints one line naming the staging directory
    if caught is not None and (spec.parent / "incomplete.json").is_file():
        step = json.loads((spec.parent / "incomplete.json").read_text())["step"]
        raise Incomplete(f"stopped by SIGTERM after step {step} (checkpointed); --resume continues")
    if returncode != 0 and not (spec.parent / "incomplete.json").is_file():
        raise RuntimeError(f"{module} failed with exit code {returncode} (see the output above)")


def _metrics(cfg: PretrainConfig, staging: Path, blend: dict[str, Any]) -> dict[str, Any]:
    log = [json.loads(x) for x in (staging / "train_log.jsonl").read_text().splitlines()]
    summary = json.loads((staging / "train_summary.json").read_text())
    export = json.loads((staging / "export.json").read_text())
    with open(staging / "loss_curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "train_loss", "valid_loss", "lr", "tokens_per_s"])
        for r in log:
            w.writerow([r["step"], r["loss"], r.get("valid_loss", ""), r["lr"], round(r["tokens_per_s"], 1)])
    _plot(log, staging / "loss_curve.png", math.log(blend["vocab_size"]))
    steady = [r["tokens_per_s"] for r in log[1:]] or [log[0]["tokens_per_s"]]  # step 1 includes warm-up
    tokens_per_s = sum(steady) / len(steady)
    m = cfg.model
    # model FLOPs per token: 6N for the dense layers + attention scores (Kaplan et al.; PaLM's MFU)
    flops_per_token = 6 * summary["parameters"] + 12 * m.num_layers * m.hidden_size * m.seq_length
    device = summary["device"]
    dtype = summary.get("matmul_dtype") or ("bf16" if summary["bf16"] else "fp32")
    peak, peak_source = mfumod.peak(summary.get("device_name"), dtype, cfg.train.peak_tflops)
    info(f"MFU peak: {peak_source}")
    valid = [r["valid_loss"] for r in log if "valid_loss" in r]
    return {
        "steps": summary["steps"],
        "parameters": summary["parameters"],
        "first_train_loss": log[0]["loss"],
        "final_train_loss": summary["final_loss"],
        "ln_vocab": round(math.log(blend["vocab_size"]), 4),
        "valid_loss": valid[-1] if valid else None,
        "valid_ppl": round(math.exp(valid[-1]), 3) if valid else None,
        "tokens_per_s": round(tokens_per_s, 1),
        "mfu": _round(mfumod.mfu(tokens_per_s, flops_per_token, peak, cfg.nproc), 6),
        "peak_tflops": peak,
        "peak_source": peak_source,
        "matmul_dtype": dtype,
        "device": device,
        "bf16": summary["bf16"],
        "data_parallel": summary["data_parallel"],
        "layout": {"tp": cfg.parallel.tensor, "pp": cfg.parallel.pipeline, "dp": summary["data_parallel"]},
        "stability_events": summary["events"],
        "hf_max_abs_logit_diff": export["max_abs_logit_diff"],
        "train_seconds": round(summary["train_seconds"], 3),
    }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _plot(log: list[dict], path: Path, ln_vocab: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], label="train")
    valid = [r for r in log if "valid_loss" in r]
    if valid:
        ax.plot([r["step"] for r in valid], [r["valid_loss"] for r in valid], "o-", label="valid")
    ax.axhline(ln_vocab, color="grey", linestyle=":", label="ln(vocab)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def export(cfg: ExportConfig) -> Manifest:
    """`llmctl export`: one checkpoint (`cfg.run.inputs`, any TP/PP layout) -> a Hugging Face
    directory artifact at `cfg.run.out`."""
    out = cfg.run.out_dir("export", "HF_DIR")
    if len(cfg.run.inputs) != 1:
        raise UserError(f"export reads one checkpoint, got {len(cfg.run.inputs)} inputs")
    checkpoint = cfg.run.inputs[0]
    ckpt = checkpoint.resolve()
    spec_file = ckpt.parent.parent / "spec.json"
    if not (ckpt / "metadata.json").is_file() or not spec_file.is_file():
        raise UserError(f"{checkpoint} is not a pretrain checkpoint (expected DIR/checkpoints/iter_NNNNNNN)")
    spec = json.loads(spec_file.read_text())
    verify_checkpoint(ckpt, "export")
    recorded = {"checkpoint": str(ckpt)}  # what export recorded before ExportConfig existed
    art = artifacts.begin("export", out, config=recorded, inputs=[ckpt], force=cfg.run.force)
    if art.done:
        return art.manifest
    staging = art.staging.resolve()
    job = {**spec, "staging": str(staging), "checkpoint": str(ckpt), "hf_out": str(staging), "resume": False}
    (staging / ".llmctl-export-spec.json").write_text(json.dumps(job, indent=2))
    _launch(1, "llmctl.pretrain.export", staging / ".llmctl-export-spec.json")
    (staging / ".llmctl-export-spec.json").unlink()
    shutil.rmtree(staging / "data-cache", ignore_errors=True)
    result = json.loads((staging / "export.json").read_text())
    (staging / "export.json").unlink()
    return art.commit({"max_abs_logit_diff": result["max_abs_logit_diff"], "checkpoint": ckpt.name})
