"""The training half of `llmctl rm`: RewardTrainer (with the LM regulariser, trainer.py) on a
1-label AutoModelForSequenceClassification initialised from MODEL, LoRA through peft (task
SEQ_CLS, the score head trained in full), checkpointed into the staging directory (`--resume`
continues from the newest `checkpoints/checkpoint-N`, with optimizer, scheduler and RNG state).

Held-out pairwise accuracy and mean margin are measured with the scorer before and after
training; reward.json records the mean and std of the rewards on (a sample of) the training pairs.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from llmctl import curves, hf, ranks
from llmctl.artifacts import write_atomic
from llmctl.console import info, is_quiet
from llmctl.rm.config import RmConfig
from llmctl.rm.scorer import REWARD_JSON, pairwise, score_ids


def _peft_config(cfg: RmConfig) -> Any:
    # the new head is trained in full, else it stays random
    return hf.lora_config(cfg.lora, "SEQ_CLS", modules_to_save=["score"])


def _args(cfg: RmConfig, output_dir: Path, device: str, dtype: Any) -> Any:
    import torch

    from llmctl.rm.trainer import RewardConfig

    t = cfg.train
    return RewardConfig(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
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
        center_rewards_coefficient=t.center_rewards_coefficient,
        gradient_checkpointing=t.gradient_checkpointing,  # TRL's default is on; the recipe decides
        bf16=dtype == torch.bfloat16,
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
    cfg: RmConfig,
    out: Path,
    model_dir: Path,
    tokenizer: Any,
    train_ex: list[dict[str, Any]],
    held_ex: list[dict[str, Any]],
    counts: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Train, then write hf/, reward.json, loss_curve.* (and adapter/) into `out` (the staging
    directory, or a criterion's directory in it); returns the metrics."""
    import datasets
    import torch

    from llmctl.rm import trainer as rt

    if is_quiet():
        hf.quiet()
        datasets.disable_progress_bars()
    device = hf.resolve_device(cfg.train.device, key="train.device")
    dtype = hf.resolve_dtype(cfg.train.dtype, device, key="train.dtype")
    what = f"model {cfg.model}"
    torch.manual_seed(cfg.train.seed)  # the new score head's initialisation: the same on --resume
    model = hf.load_sequence_classifier(
        model_dir, what=what, dtype=torch.float32, device=device, num_labels=1
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    pad, bs = tokenizer.pad_token_id, cfg.train.eval_batch_size
    before = pairwise(model, held_ex, pad_id=pad, batch_size=bs)
    info(f"held-out pairwise accuracy before training: {before['accuracy']:.3f}")
    lm_head = None
    if cfg.train.lm_weight > 0 and not getattr(model.config, "tie_word_embeddings", False):
        lm_head = hf.output_embeddings(model_dir, what=what).to(device)
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.lora.enabled else None
    ckpt_dir = out / "checkpoints"
    # chosen_start only feeds the LM regulariser's labels: without it the collator builds none
    keys = ("chosen_ids", "rejected_ids", "margin") + (("chosen_start",) if cfg.train.lm_weight > 0 else ())
    rows = [{k: e[k] for k in keys if k in e} for e in train_ex]
    trainer = rt.RegularisedRewardTrainer(
        model=model,
        args=_args(cfg, ckpt_dir, device, dtype),
        data_collator=rt.PairCollator(pad_token_id=pad),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_peft_config(cfg) if cfg.lora.enabled else None,
        lm_weight=cfg.train.lm_weight,
        lm_head=lm_head,
    )
    if is_quiet():  # with tqdm off, transformers prints every log dict instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    last = hf.last_checkpoint(ckpt_dir)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - t0
    model = trainer.model.eval()
    after = pairwise(model, held_ex, pad_id=pad, batch_size=bs)
    info(f"held-out pairwise accuracy: {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    history = [
        {k: h.get(k) for k in ("step", "loss", "accuracy", "margin", "lm_loss")}
        for h in trainer.state.log_history
        if "loss" in h and "step" in h
    ]
    sample = random.Random(f"{cfg.train.seed}:stats").sample(
        train_ex, min(len(train_ex), cfg.train.stats_max_pairs)
    )
    rewards = score_ids(
        model, [e[k] for e in sample for k in ("chosen_ids", "rejected_ids")], pad_id=pad, batch_size=bs
    )
    stats = {
        "reward_mean": statistics.fmean(rewards),
        "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else 1.0,
        "reward_stats_pairs": len(sample),
    }
    metrics: dict[str, Any] = {
        "held_out_accuracy_before": before["accuracy"],
        "held_out_accuracy_after": after["accuracy"],
        "held_out_margin_before": before["mean_margin"],
        "held_out_margin_after": after["mean_margin"],
        "held_out_pairs": len(held_ex),
        "train_pairs": len(train_ex),
        "per_source": {
            s: {"before": before["per_source"].get(s), "after": after["per_source"].get(s)}
            for s in sorted(after["per_source"])
        },
        "per_subset": {
            s: {"before": before.get("per_subset", {}).get(s), "after": v}
            for s, v in after.get("per_subset", {}).items()
        },
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "first_train_loss": history[0]["loss"] if history else None,
        "final_train_loss": history[-1]["loss"] if history else None,
        "pairs_per_s": round(
            trainer.state.global_step
            * cfg.train.batch_size
            * cfg.train.grad_accum
            * cfg.nproc
            / max(1e-9, seconds),
            2,
        ),
        "seconds": round(seconds, 3),
        "train_runtime": result.metrics.get("train_runtime"),  # the trainer's own clock (bench)
        "resumed_from": Path(last).name if last else None,
        "lm_weight": cfg.train.lm_weight,
        "lora": cfg.lora.enabled,
        "sources": counts,
        **stats,
    }
    if ranks.is_main():  # the others trained the same model: rank 0 writes it
        _finish(cfg, out, model, tokenizer, metrics, history, base_state)
    ranks.barrier()
    return metrics


def _finish(
    cfg: RmConfig,
    staging: Path,
    model: Any,
    tokenizer: Any,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    base_state: dict[str, Any] | None,
) -> None:
    if cfg.lora.enabled:
        model.save_pretrained(staging / "adapter", safe_serialization=True)
        metrics["base_weights_changed"] = _base_changed(model, base_state)
        model = model.merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.num_labels = 1
    hf.save_model(model, staging / "hf")
    hf.save_tokenizer(tokenizer, staging / "hf")
    spec = {
        "score": "the 1-label head's output at the last token of chat_template(prompt + [response])",
        "chat_template": hf.chat_template(tokenizer),
        "max_length": cfg.data.max_length,
        "truncation": "left (the last max_length tokens)",
        "reward_mean": metrics["reward_mean"],
        "reward_std": metrics["reward_std"],
        "pad_token_id": tokenizer.pad_token_id,
    }
    write_atomic(staging / REWARD_JSON, json.dumps(spec, indent=2) + "\n")
    curves.write(
        history, staging, ["step", "loss", "accuracy", "margin", "lm_loss"], "accuracy", "train pair accuracy"
    )
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)


def _base_changed(model: Any, base_state: dict[str, Any] | None) -> int | None:
    """How many base (non-adapter, non-head) tensors differ from before training: 0 for LoRA."""
    if base_state is None:
        return None
    import torch

    changed = 0
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" in name or "modules_to_save" in name or "original_module" in name:
            continue
        key = name.replace(".base_layer.", ".")
        if key in base_state and not torch.equal(base_state[key], tensor):
            changed += 1
    return changed
