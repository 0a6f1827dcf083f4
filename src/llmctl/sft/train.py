"""The training half of `llmctl sft`: TRL's SFTTrainer over each stage's examples, in order, on
one model (LoRA through peft when asked), checkpointed into the staging directory for --resume.

A finished stage leaves `stages/NAME/` (its weights, or its adapter, and metrics.json): a resumed
run starts after the last finished stage, and inside the interrupted one from its newest
trainer checkpoint (`checkpoints/NAME/checkpoint-N`, with optimizer, scheduler and RNG state).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from llmctl import hf, ranks
from llmctl.artifacts import write_atomic
from llmctl.console import info, is_quiet
from llmctl.errors import UserError
from llmctl.sft.config import SftConfig


def _trl() -> Any:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    hf.offline()
    import trl

    return trl


def lora_targets(model: Any, targets: list[str]) -> None:
    """Exit 2 before training when a LoRA target module is not in the model."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"}
        )
        raise UserError(
            f"lora.target_modules: {', '.join(missing)} not in the model "
            f"(its linear layers: {', '.join(linear)})"
        )


def _peft_config(cfg: SftConfig) -> Any:
    return hf.lora_config(cfg.lora, "CAUSAL_LM")


def _args(cfg: SftConfig, output_dir: Path, stage: Any, n_examples: int, device: str, dtype: Any) -> Any:
    trl = _trl()
    t = cfg.train
    import torch

    return trl.SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=stage.epochs,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.schedule,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps (transformers 5)
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=t.seed,
        data_seed=t.seed,
        max_length=cfg.data.max_length,
        packing=t.packing,
        assistant_only_loss=t.assistant_only_loss,
        bf16=dtype == torch.bfloat16,
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5's name for it
        fsdp=True if t.fsdp else None,
        fsdp_config=dict(t.fsdp_config) if t.fsdp else None,
        use_cpu=device == "cpu",
        report_to=[],
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=is_quiet(),
        eval_strategy="no",
        save_only_model=False,
        remove_unused_columns=True,
    )


def train(
    cfg: SftConfig,
    staging: Path,
    model_dir: Path,
    tokenizer: Any,
    plan: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    counts: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Train every stage of `plan` into `staging`; rank 0 (the only rank without torchrun) writes
    the stages, the final model and the curves, and returns (metrics, summary) to commit; other
    ranks return None."""
    trl = _trl()
    import datasets
    import torch

    if is_quiet():
        hf.quiet()
        datasets.disable_progress_bars()
    device = hf.resolve_device(cfg.train.device, key="train.device")
    dtype = hf.resolve_dtype(cfg.train.dtype, device, key="train.dtype")
    # weights stay fp32 (mixed precision computes in bf16 when asked): the optimizer updates fp32
    model = hf.load_causal_lm(model_dir, what=f"model {cfg.model}", dtype=torch.float32, device=device)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.lora.enabled else None
    held = datasets.Dataset.from_list(held_out)
    stages_dir = staging / "stages"
    main = ranks.is_main()
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    loss_before = None
    for i, item in enumerate(plan):
        stage = item["stage"]
        done_dir = stages_dir / stage.name
        if (done_dir / "metrics.json").is_file():  # finished before an interruption
            model = _load_stage(model, done_dir, cfg, model_dir, device)
            m = json.loads((done_dir / "metrics.json").read_text())
            results.append(m)
            history.extend(m.pop("history", []))
            loss_before = loss_before if loss_before is not None else m.get("held_out_loss_before")
            info(f"stage {stage.name}: finished before the interruption; its weights are reloaded")
            continue
        ckpt_dir = staging / "checkpoints" / stage.name
        args = _args(cfg, ckpt_dir, stage, len(item["examples"]), device, dtype)
        trainer = trl.SFTTrainer(
            model=model,
            args=args,
            train_dataset=datasets.Dataset.from_list(item["examples"]),
            eval_dataset=held,
            processing_class=tokenizer,
            peft_config=_peft_config(cfg) if cfg.lora.enabled and i == 0 and not _is_peft(model) else None,
        )
        if is_quiet():  # with tqdm off, transformers prints every log dict instead
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        if loss_before is None:
            loss_before = trainer.evaluate()["eval_loss"]
            info(f"held-out loss before tuning: {loss_before:.4f}")
        last = hf.last_checkpoint(ckpt_dir)
        trainer.add_callback(hf.token_count(trainer))
        s0 = time.perf_counter()
        out = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - s0
        model = trainer.model
        after = trainer.evaluate()["eval_loss"]
        logs = [
            {"stage": stage.name, "step": h["step"], "loss": h["loss"]}
            for h in trainer.state.log_history
            if "loss" in h and "step" in h
        ]
        # the tokens TRL trained on (its count, carried across a resume); the dataset's size is not it
        tokens = int(trainer._total_train_tokens)
        m = {
            "stage": stage.name,
            "examples": len(item["examples"]),
            "per_source": item["per_source"],
            "steps": trainer.state.global_step,
            "epochs": stage.epochs,
            "train_loss": out.training_loss,
            "first_train_loss": logs[0]["loss"] if logs else None,
            "final_train_loss": logs[-1]["loss"] if logs else None,
            "held_out_loss_before": loss_before if i == 0 else results[-1]["held_out_loss_after"],
            "held_out_loss_after": after,
            "label_fraction": _label_fraction(trainer.train_dataset),
            "tokens": tokens,
            "seconds": round(seconds, 3),
            "train_runtime": out.metrics.get("train_runtime"),  # the trainer's own clock (bench)
            "resumed_from": Path(last).name if last else None,
        }
        info(f"stage {stage.name}: held-out loss {m['held_out_loss_before']:.4f} -> {after:.4f}")
        if main:
            _save_stage(model, done_dir, {**m, "history": logs}, cfg)
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # the stage's weights are in stages/NAME now
        ranks.barrier()  # no rank starts the next stage (or leaves) before rank 0 has saved this one
        results.append(m)
        history.extend(logs)
    if not main:
        return None
    seconds = time.perf_counter() - t0
    return _finish(cfg, staging, model, tokenizer, results, history, counts, base_state, seconds)


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def _label_fraction(ds: Any) -> float | None:
    """Share of the training tokens that carry a label (the assistant's, with assistant_only_loss):
    TRL folds the assistant mask into `labels` (-100 elsewhere)."""
    if "labels" not in ds.column_names:
        return None
    total = labelled = 0
    for labels in ds["labels"]:
        total += len(labels)
        labelled += sum(1 for t in labels if t != -100)
    return round(labelled / max(1, total), 6)


def _save_stage(model: Any, directory: Path, metrics: dict[str, Any], cfg: SftConfig) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)  # the adapter alone for a PeftModel
    write_atomic(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def _load_stage(model: Any, directory: Path, cfg: SftConfig, model_dir: Path, device: str) -> Any:
    import torch

    if cfg.lora.enabled:
        return hf.load_adapter(model, directory, trainable=True)
    return hf.load_causal_lm(directory, what=f"stage {directory.name}", dtype=torch.float32, device=device)


def _finish(
    cfg: SftConfig,
    staging: Path,
    model: Any,
    tokenizer: Any,
    results: list[dict[str, Any]],
    history: list[dict[str, Any]],
    counts: dict[str, dict[str, Any]],
    base_state: dict[str, Any] | None,
    seconds: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    changed_base = None
    if cfg.lora.enabled:
        model.save_pretrained(staging / "adapter", safe_serialization=True)
        changed_base = _base_changed(model, base_state)
        model = model.merge_and_unload()
    model.config.use_cache = True
    _stop_at_end_of_turn(model, tokenizer)
    hf.save_model(model, staging / "hf")
    hf.save_tokenizer(tokenizer, staging / "hf")
    _write_curve(history, staging)
    shutil.rmtree(staging / "stages", ignore_errors=True)
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
    tokens = sum(r["tokens"] for r in results)
    metrics: dict[str, Any] = {
        "held_out_loss_before": results[0]["held_out_loss_before"],
        "held_out_loss_after": results[-1]["held_out_loss_after"],
        "first_train_loss": results[0]["first_train_loss"],
        "final_train_loss": results[-1]["final_train_loss"],
        "steps": sum(r["steps"] for r in results),
        "tokens_trained": tokens,
        "tokens_per_s": round(tokens / max(1e-9, sum(r["seconds"] for r in results)), 1),
        "label_fraction": results[0]["label_fraction"],
        "lora": cfg.lora.enabled,
        "base_weights_changed": changed_base,
        "sources": counts,
        "stages": results,
        "seconds": round(seconds, 3),
    }
    write_atomic(
        staging / "examples.json", json.dumps({r["stage"]: r["per_source"] for r in results}, indent=2) + "\n"
    )
    summary = {
        k: metrics[k]
        for k in ("held_out_loss_before", "held_out_loss_after", "steps", "tokens_trained", "tokens_per_s")
    }
    return metrics, summary


def _stop_at_end_of_turn(model: Any, tokenizer: Any) -> None:
    """generate() stops at the chat template's end-of-turn token (ChatML's <|im_end|>) as well as
    at the tokenizer's eos: a tuned assistant ends its turn, not the document."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end is not None and end not in stops:
        stops.append(end)
    if stops:
        model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
        if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def _base_changed(model: Any, base_state: dict[str, Any] | None) -> int | None:
    """How many base (non-adapter) tensors differ from before training: 0 for a correct LoRA run."""
    if base_state is None:
        return None
    import torch

    changed = 0
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer.", ".")
        if key in base_state and not torch.equal(base_state[key], tensor):
            changed += 1
    return changed


def _write_curve(history: list[dict[str, Any]], staging: Path) -> None:
    with open(staging / "loss_curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stage", "step", "loss"])
        for h in history:
            w.writerow([h["stage"], h["step"], f"{h['loss']:.6f}"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    offset = 0
    for name in dict.fromkeys(h["stage"] for h in history):
        pts = [h for h in history if h["stage"] == name]
        ax.plot([offset + h["step"] for h in pts], [h["loss"] for h in pts], marker=".", label=name)
        offset += max(h["step"] for h in pts)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (assistant tokens)")
    if history:
        ax.legend()
    fig.tight_layout()
    fig.savefig(staging / "loss_curve.png", dpi=100, metadata={"Software": None})
    plt.close(fig)
