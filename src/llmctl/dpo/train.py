"""The training half of `llmctl dpo`: TRL's DPOTrainer on the policy (LoRA through peft when
asked), checkpointed into the staging directory (`--resume` continues from the newest
`checkpoints/checkpoint-N`, with optimizer, scheduler and RNG state).

The reference pi_ref is the initial policy unless reference.model names another: with LoRA it is
the adapter-disabled policy (TRL's ref_model=None, no second copy); with reference.precompute its
log-probs are computed once before training (TRL's precompute_ref_log_probs) and it is not kept
in memory while training (it is loaded again afterwards for the held-out measures); otherwise a
second, frozen copy. Held-out measures (llmctl.dpo.measure) are taken before and after training.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from llmctl import curves, hf, ranks
from llmctl.console import info, is_quiet
from llmctl.dpo.config import DpoConfig
from llmctl.dpo.measure import measure
from llmctl.sft.train import _base_changed, _peft_config, _stop_at_end_of_turn

TRL_COLUMNS = ("prompt", "chosen", "rejected")


def _trl() -> Any:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    hf.offline()
    import trl

    return trl


def dpo_args(cfg: DpoConfig, output_dir: Path, device: str, dtype: Any) -> Any:
    """TRL's DPOConfig from the recipe. Every default of TRL's that differs from transformers'
    (bf16 and gradient checkpointing on) is set here explicitly, from the recipe."""
    import torch

    trl = _trl()
    t = cfg.train
    losses, weights = [t.loss], [1.0]
    if t.sft_weight > 0:
        losses, weights = [t.loss, "sft"], [1.0, t.sft_weight]
    return trl.DPOConfig(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
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
        beta=t.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=cfg.data.max_length,
        precompute_ref_log_probs=cfg.reference.precompute,
        precompute_ref_batch_size=t.eval_batch_size,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=dtype == torch.bfloat16,
        fp16=False,
        use_cpu=device == "cpu",
        report_to=[],
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=is_quiet(),
        eval_strategy="no",
        save_only_model=False,
    )


def train(
    cfg: DpoConfig,
    out: Path,
    model_dir: Path,
    ref_dir: Path | None,
    tokenizer: Any,
    train_ex: list[dict[str, Any]],
    held_ex: list[dict[str, Any]],
    counts: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Train, then write hf/, loss_curve.* (and adapter/) into `out`; returns the metrics."""
    trl = _trl()
    import datasets
    import torch

    if is_quiet():
        hf.quiet()
        datasets.disable_progress_bars()
        os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's reference precompute bar reads only this
    device = hf.resolve_device(cfg.train.device, key="train.device")
    dtype = hf.resolve_dtype(cfg.train.dtype, device, key="train.dtype")
    # weights stay fp32 (mixed precision computes in bf16 when asked): the optimizer updates fp32
    model = hf.load_causal_lm(model_dir, what=f"model {cfg.model}", dtype=torch.float32, device=device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.lora.enabled else None
    ref_model = _reference(cfg, model_dir, ref_dir, device, during_training=True)
    pad, bs, beta = tokenizer.pad_token_id, cfg.train.eval_batch_size, cfg.train.beta
    before_ref = ref_model if ref_model is not None else model  # before training pi_ref == pi (or named)
    before = measure(model, _logits(before_ref), held_ex, beta=beta, pad_id=pad, batch_size=bs)
    info(f"held-out implicit-reward accuracy before training: {before['accuracy']:.3f}")
    ckpt_dir = out / "checkpoints"
    rows = [{k: e[k] for k in TRL_COLUMNS} for e in train_ex]
    trainer = trl.DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=dpo_args(cfg, ckpt_dir, device, dtype),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_peft_config(cfg) if cfg.lora.enabled else None,  # type: ignore[arg-type]
    )
    if is_quiet():  # with tqdm off, transformers prints every log dict instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    last = hf.last_checkpoint(ckpt_dir)
    trainer.add_callback(hf.token_count(trainer))
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - t0
    model = trainer.model.eval()
    ref_after = trainer.ref_model
    if ref_after is None and not cfg.lora.enabled:  # precomputed: the reference was not kept; load it
        ref_after = _reference(cfg, model_dir, ref_dir, device, during_training=False)
    after = measure(model, _logits(ref_after, model), held_ex, beta=beta, pad_id=pad, batch_size=bs)
    info(f"held-out implicit-reward accuracy: {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    history = [
        {
            "step": h["step"],
            "loss": h["loss"],
            "reward_accuracy": h.get("rewards/accuracies"),
            "reward_margin": h.get("rewards/margins"),
        }
        for h in trainer.state.log_history
        if "loss" in h and "step" in h
    ]
    start_step = int(Path(last).name.split("-")[-1]) if last else 0
    steps_run = trainer.state.global_step - start_step
    trained_pairs = steps_run * cfg.train.batch_size * cfg.train.grad_accum * cfg.nproc
    metrics: dict[str, Any] = {
        "held_out_accuracy_before": before["accuracy"],
        "held_out_accuracy_after": after["accuracy"],
        "held_out_margin_before": before["margin"],
        "held_out_margin_after": after["margin"],
        "held_out_kl_before": before["kl_per_token"],
        "held_out_kl_after": after["kl_per_token"],
        "held_out_kl_per_response_after": after["kl_per_response"],
        "held_out_reward_chosen_after": after["reward_chosen"],
        "held_out_reward_rejected_after": after["reward_rejected"],
        "reference_logprob_accuracy": after["reference_logprob_accuracy"],
        "held_out_pairs": len(held_ex),
        "train_pairs": len(train_ex),
        "per_source": {
            s: {"before": before["per_source"].get(s), "after": v} for s, v in after["per_source"].items()
        },
        "measures": "implicit reward beta*(log pi - log pi_ref) summed over response tokens, ties count 1/2; "
        "KL(pi||pi_ref) exact over the vocabulary, teacher-forced on the held-out chosen and rejected "
        "responses, mean per response token",
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "first_train_loss": history[0]["loss"] if history else None,
        "final_train_loss": history[-1]["loss"] if history else None,
        "tokens_trained": int(trainer._total_train_tokens),  # TRL's count, carried across a resume
        "pairs_per_s": round(trained_pairs / max(1e-9, seconds), 2),
        "seconds": round(seconds, 3),
        "train_runtime": result.metrics.get("train_runtime"),  # the trainer's own clock (bench)
        "resumed_from": Path(last).name if last else None,
        "loss": cfg.train.loss,
        "beta": beta,
        "sft_weight": cfg.train.sft_weight,
        "reference": cfg.reference.model
        or ("adapter-disabled policy" if cfg.lora.enabled else "initial policy"),
        "lora": cfg.lora.enabled,
        "sources": counts,
    }
    if ranks.is_main():  # the others trained the same model: rank 0 writes it
        _finish(cfg, out, model, tokenizer, metrics, history, base_state)
    ranks.barrier()
    return metrics


def _reference(
    cfg: DpoConfig, model_dir: Path, ref_dir: Path | None, device: str, *, during_training: bool
) -> Any:
    """The frozen reference model to keep, or None where TRL needs none: LoRA (the adapter-disabled
    policy) or, during training, precomputed log-probs."""
    import torch

    if ref_dir is not None:
        what, path = f"reference.model {cfg.reference.model}", ref_dir
    elif cfg.lora.enabled or (cfg.reference.precompute and during_training):
        return None
    else:
        what, path = f"model {cfg.model}", model_dir
    ref = hf.load_causal_lm(path, what=what, dtype=torch.float32, device=device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _logits(ref: Any, policy: Any = None) -> Any:
    """reference(ids, mask) -> logits: the reference model's, or (ref None: LoRA) the policy's
    with its adapter disabled."""

    def call(ids: Any, mask: Any) -> Any:
        model = ref if ref is not None else policy
        ctx = policy.disable_adapter() if ref is None else nullcontext()
        with ctx:
            return model(input_ids=ids, attention_mask=mask).logits

    return call


def _finish(
    cfg: DpoConfig,
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
    model.config.use_cache = True
    _stop_at_end_of_turn(model, tokenizer)
    hf.save_model(model, staging / "hf")
    hf.save_tokenizer(tokenizer, staging / "hf")
    curves.write(
        history,
        staging,
        ["step", "loss", "reward_accuracy", "reward_margin"],
        "reward_accuracy",
        "train reward accuracy",
    )
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
