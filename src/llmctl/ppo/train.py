"""The PPO run itself: TRL 1.12's `trl.experimental.ppo.PPOTrainer` driven with llmctl's models,
its per-step logs captured to JSONL/CSV/PNG, samples of the policy's answers, and the artifact's
hf/ (the merged policy). `llmctl.ppo.stage` calls `train` after it checked the inputs.

    llmctl ppo runs/sft --reward-model runs/rm --prompts prompts.jsonl --out runs/ppo -c recipes/ppo/tiny.yaml

The engine's parts as InstructGPT names them: policy (trained), reference (the initial policy,
frozen; with LoRA the adapter-disabled policy), reward model (frozen; its score normalised with
reward.json's mean/std when ppo.normalise_rewards), value model (initialised from the reward model,
trained). The engine hands the reward model the policy's token ids and reads its head at the last
generated token; `reward_module` makes that the score `llmctl rm` defines instead (the response's
text through the reward model's chat template, read at the template's end), so that PPO maximises
the very score the held-out measure reports. stage.py still insists on one vocabulary for both:
the value model, a copy of the reward model, reads the policy's token ids.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmctl import hf, ranks
from llmctl.artifacts import write_atomic
from llmctl.console import info, is_quiet
from llmctl.ppo import prompts as pr
from llmctl.ppo.config import PpoConfig

# engine log key -> our column (what the CSV, the plot and the manifest call them)
COLUMNS = {
    "objective/scores": "reward",
    "objective/rlhf_reward": "rlhf_reward",
    "objective/kl": "kl",
    "objective/entropy": "entropy",
    "loss/value_avg": "value_loss",
    "loss/policy_avg": "policy_loss",
    "policy/clipfrac_avg": "clipfrac",
    "val/clipfrac_avg": "value_clipfrac",
    "policy/approxkl_avg": "approxkl",
    "val/num_eos_tokens": "eos_tokens",
    "lr": "lr",
    "episode": "episode",
}
CSV_COLUMNS = [
    "step",
    "episode",
    "reward_raw",
    "reward",
    "rlhf_reward",
    "kl",
    "kl_coef",
    "entropy",
    "value_loss",
    "policy_loss",
    "clipfrac",
    "value_clipfrac",
    "approxkl",
    "response_length",
    "eos_tokens",
    "lr",
]


def reward_parts(scorer: Any, normalise: bool) -> list[tuple[Any, float, float, float]]:
    """(model, weight, mean, std) of each reward model: one for an rm artifact (mean/std from its
    reward.json when ppo.normalise_rewards, else 0/1), one per criterion for a combined one (always
    normalised: the combined score is defined as the weighted sum of normalised rewards)."""
    if hasattr(scorer, "parts"):
        return [(s.model, w, s.mean, s.std) for s, w in scorer.parts.values()]
    return [(scorer.model, 1.0, scorer.mean, scorer.std) if normalise else (scorer.model, 1.0, 0.0, 1.0)]


def reward_module(
    parts: list[tuple[Any, float, float, float]],
    state: dict[str, Any],
    renders: list[Callable[[list[int], list[int]], list[int]]] | None = None,
) -> Any:
    """The reward model(s) as the engine calls one (`getattr(m, m.base_model_prefix)(...)`, then
    `m.score(hidden_states[-1])` read at the response's last token): `score` splits the parts'
    concatenated last hidden states and returns sum(weight * (head(h) - mean) / std), which is
    llmctl.rm.scorer.CombinedScorer's score for several parts. The response lengths of every scored
    batch are recorded in `state` (the engine logs none; they are read off the mask it passes).

    With `renders` (one per part: (prompt ids, response ids) -> the ids that part's Scorer reads),
    each part scores the conversation as `llmctl rm` defines its score: the response's text through
    the reward model's chat template, read at the template's last token, the same score as the
    held-out measure (prompts.score). Without them the engine's own reading applies: the raw ids,
    read at the last generated token (a truncated response mid-sentence, and never the template's
    closing tokens the reward model was trained to score at)."""
    from types import SimpleNamespace

    import torch

    def rendered(backbone: Any, render: Callable, kw: dict[str, Any], width: int) -> Any:
        """The part's last hidden state at the end of each rendered conversation, at every position
        of the engine's row (the engine reads one position; which one does not matter then)."""
        ids, mask = kw["input_ids"], kw["attention_mask"].bool()
        rows = []
        for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
            prompt = [t for t, k in zip(row[:width], keep[:width], strict=True) if k]
            rows.append(render(prompt, [t for t, k in zip(row[width:], keep[width:], strict=True) if k]))
        batch = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
        attend = torch.zeros_like(batch)
        for i, r in enumerate(rows):  # right padding, as the rm Scorer batches
            batch[i, : len(r)] = torch.tensor(r)
            attend[i, : len(r)] = 1
        out = backbone(
            input_ids=batch.to(ids.device),
            attention_mask=attend.to(ids.device),
            return_dict=True,
            output_hidden_states=True,
            use_cache=False,
        )
        last = out.hidden_states[-1][torch.arange(len(rows)), attend.sum(1).to(ids.device) - 1]
        return last[:, None, :].expand(-1, ids.shape[1], -1)

    class Backbones(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = torch.nn.ModuleList(getattr(m, m.base_model_prefix) for m, *_ in parts)

        def forward(self, **kw: Any) -> Any:
            widths = state.get("widths")
            if widths and "attention_mask" in kw:
                width = widths[0]
                state.setdefault("lengths", []).extend(kw["attention_mask"][:, width:].sum(1).tolist())
            if renders is not None:  # the engine scores only batches our Collator made (widths)
                hidden = [rendered(b, r, kw, widths[0]) for b, r in zip(self.inner, renders, strict=True)]
            else:
                hidden = [b(**kw).hidden_states[-1] for b in self.inner]
            return SimpleNamespace(hidden_states=[hidden[0] if len(hidden) == 1 else torch.cat(hidden, -1)])

    class Combined(torch.nn.Module):
        base_model_prefix = "backbone"

        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbones()
            self.heads = torch.nn.ModuleList(m.score for m, *_ in parts)
            self.widths = [m.score.in_features for m, *_ in parts]

        def score(self, hidden: Any) -> Any:
            pieces = zip(hidden.split(self.widths, -1), self.heads, parts, strict=True)
            return sum(w * (head(h) - mean) / std for h, head, (_, w, mean, std) in pieces)

    return Combined().eval().requires_grad_(False)


def scorer_renders(
    scorer: Any, tokenizer: Any, prompts: dict[tuple[int, ...], Any], stop_id: int
) -> list[Callable[[list[int], list[int]], list[int]]]:
    """For each part of `scorer` (an rm Scorer, or a CombinedScorer's criteria): (prompt ids,
    response ids) -> the ids that part reads for (prompt, response text), as prompts.score renders
    them. `prompts` maps each prompt's ids (prompts.prompt_ids) back to its messages."""
    from llmctl.rm.scorer import parts_of

    def render_for(part: Any) -> Callable[[list[int], list[int]], list[int]]:
        def render(prompt_ids: list[int], response_ids: list[int]) -> list[int]:
            text = pr.response_text(tokenizer, response_ids, stop_id)
            return pr.scored_ids(part, prompts[tuple(prompt_ids)], text)

        return render

    return [render_for(s) for s in parts_of(scorer)]


class Collator:
    """The engine's DataCollatorWithPadding (left padding), remembering the padded prompt width of
    the batch it made: the engine's context_length, where responses start (for response_length)."""

    def __init__(self, tokenizer: Any, state: dict[str, Any]) -> None:
        from transformers import DataCollatorWithPadding

        self.inner = DataCollatorWithPadding(tokenizer)
        self.state = state

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.inner(features)
        # a FIFO: a prefetching loader would collate one batch ahead; the current one is the oldest
        self.state.setdefault("widths", []).append(batch["input_ids"].shape[1])
        return batch


def adapt_kl_coef(coef: float, kl: float, target: float, episodes: int, horizon: int) -> float:
    """Ziegler et al.'s adaptive KL controller (InstructGPT's): the coefficient for the next step,
    from this step's KL per response and the episodes it rolled out."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return coef * (1.0 + error * episodes / horizon)


def _callback(
    cfg: PpoConfig,
    staging: Path,
    scorer: Any,
    tokenizer: Any,
    held: list,
    stop_id: int,
    state: dict[str, Any],
    shift: tuple[float, float],
) -> Any:
    """Per step: one row of the log (JSONL appended as it comes, so a killed run keeps its log);
    every ppo.sample_every steps a few held-out prompts with greedy answers and rewards."""
    from transformers import TrainerCallback

    log_path, samples_path = staging / "ppo_log.jsonl", staging / "samples.jsonl"
    mean, std = shift

    class Logger(TrainerCallback):
        def on_log(self, args: Any, st: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if not logs or "objective/scores" not in logs:
                return
            row: dict[str, Any] = {"step": st.global_step}
            row.update({ours: logs[k] for k, ours in COLUMNS.items() if k in logs})
            row["reward_raw"] = row["reward"] * std + mean if cfg.ppo.normalise_rewards else row["reward"]
            row["kl_coef"] = args.kl_coef  # the coefficient this step's rewards were computed with
            if cfg.ppo.kl_target is not None and row.get("kl") is not None:
                # the engine reads args.kl_coef at every rollout; the KL is a mean over every rank
                args.kl_coef = adapt_kl_coef(
                    args.kl_coef, row["kl"], cfg.ppo.kl_target, args.batch_size, cfg.ppo.kl_horizon
                )
            lengths = state.pop("lengths", [])
            if state.get("widths"):
                state["widths"].pop(0)
            row["response_length"] = sum(lengths) / len(lengths) if lengths else None
            state.setdefault("history", []).append(row)
            if ranks.is_main():  # the metrics are means over every rank already
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")

        def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> None:
            step = st.global_step
            if not cfg.ppo.samples or (step % cfg.ppo.sample_every and step != st.max_steps):
                return
            if not ranks.is_main():
                return
            trainer = state["trainer"]
            policy = trainer.accelerator.unwrap_model(trainer.model).policy  # DDP hides .policy
            few = held[: cfg.ppo.samples]
            texts = [
                t[0]
                for t in pr.answer(
                    policy,
                    tokenizer,
                    few,
                    max_new_tokens=cfg.ppo.response_length,
                    stop_id=stop_id,
                    batch_size=cfg.ppo.eval_batch_size,
                )
            ]
            rewards = pr.score(scorer, few, texts)
            with open(samples_path, "a") as f:
                for p, t, r in zip(few, texts, rewards, strict=True):
                    f.write(json.dumps({"step": step, "prompt": p, "response": t, "reward": r}) + "\n")

    return Logger()


def _ppo_args(cfg: PpoConfig, out: Path, device: str, dtype: Any, stop_id: int) -> Any:
    import torch
    from trl.experimental.ppo import PPOConfig

    p = cfg.ppo
    return PPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=p.batch_size,
        gradient_accumulation_steps=p.grad_accum,
        per_device_eval_batch_size=p.batch_size,
        local_rollout_forward_batch_size=p.batch_size,
        num_mini_batches=p.num_mini_batches,
        total_episodes=p.total_episodes,
        num_ppo_epochs=p.num_ppo_epochs,
        learning_rate=p.lr,
        kl_coef=p.kl_coef,
        kl_estimator=p.kl_estimator,
        gamma=p.gamma,
        lam=p.lam,
        cliprange=p.cliprange,
        cliprange_value=p.cliprange_value,
        vf_coef=p.vf_coef,
        whiten_rewards=p.whiten_rewards,
        response_length=p.response_length,
        temperature=p.temperature,
        stop_token_id=stop_id,  # the end-of-turn token: the engine truncates responses after it
        missing_eos_penalty=p.missing_eos_penalty,
        seed=p.seed,
        logging_steps=1,
        save_strategy="steps",  # the engine's loop calls our _save_checkpoint (llmctl.ppo.resume)
        save_steps=p.save_steps,
        num_sample_generations=0,  # samples.jsonl is written by our callback instead
        report_to=[],
        bf16=dtype == torch.bfloat16,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=device == "cpu",
        disable_tqdm=is_quiet(),
        dataloader_num_workers=0,  # the collator's record of the prompt width must be the batch's
    )


def freeze_value_backbone(value: Any) -> None:
    """Only the value model's head trains (ppo.value_train=head): the engine's optimizer takes the
    parameters that require grad, and the critic's backbone is `value.<base_model_prefix>`."""
    getattr(value, value.base_model_prefix).requires_grad_(False)


def _peft_config(cfg: PpoConfig) -> Any:
    return hf.lora_config(cfg.lora, "CAUSAL_LM")


def train(
    cfg: PpoConfig,
    staging: Path,
    policy_dir: Path,
    tokenizer: Any,
    scorer: Any,
    value_from: Path,
    train_prompts: list,
    held: list,
    stop_id: int,
) -> dict[str, Any] | None:
    """Run PPO (this process's rank of it) and, on rank 0, write the artifact's payload into
    `staging` and return the metrics; the other ranks return None."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import datasets
    import torch

    from llmctl.config import to_dict
    from llmctl.ppo import resume

    device = hf.resolve_device(cfg.ppo.device, key="ppo.device")
    dtype = hf.resolve_dtype(cfg.ppo.dtype, device, key="ppo.dtype")
    torch.manual_seed(cfg.ppo.seed)
    what = f"policy {cfg.model}"
    policy = hf.load_causal_lm(policy_dir, what=what, dtype=dtype, device=device)
    ref = None if cfg.lora.enabled else hf.load_causal_lm(policy_dir, what=what, dtype=dtype, device=device)
    value = hf.load_sequence_classifier(
        value_from / "hf", what=f"value model from {value_from}", dtype=dtype, device=device
    )
    value.config.pad_token_id = tokenizer.pad_token_id
    if cfg.ppo.value_train == "head":
        freeze_value_backbone(value)
    shift = (scorer.mean, scorer.std) if cfg.ppo.normalise_rewards else (0.0, 1.0)
    state: dict[str, Any] = {}
    gen = {
        "max_new_tokens": cfg.ppo.response_length,
        "stop_id": stop_id,
        "batch_size": cfg.ppo.eval_batch_size,
    }

    main = ranks.is_main()
    if main:  # the held-out measure is rank 0's; the others meet it in the trainer's first sync
        before, before_texts, _ = pr.mean_reward(policy, tokenizer, scorer, held, **gen)
        info(f"held-out greedy reward before: {before:.4f}")
    rows = [{"input_ids": pr.prompt_ids(tokenizer, p)} for p in train_prompts]
    held_rows = [{"input_ids": pr.prompt_ids(tokenizer, p)} for p in held]
    by_ids = {tuple(r["input_ids"]): p for r, p in zip(rows + held_rows, train_prompts + held, strict=True)}
    renders = scorer_renders(scorer, tokenizer, by_ids, stop_id)
    reward = reward_module(reward_parts(scorer, cfg.ppo.normalise_rewards), state, renders)
    history: list[dict[str, Any]] = []
    state["history"] = history
    trainer = resume.Trainer(
        args=_ppo_args(cfg, staging / "checkpoints", device, dtype, stop_id),
        processing_class=tokenizer,
        model=policy,
        ref_model=ref,
        reward_model=reward,
        train_dataset=datasets.Dataset.from_list(rows),
        value_model=value,
        data_collator=Collator(tokenizer, state),
        eval_dataset=datasets.Dataset.from_list(held_rows),
        peft_config=_peft_config(cfg) if cfg.lora.enabled else None,
        callbacks=[_callback(cfg, staging, scorer, tokenizer, held, stop_id, state, shift)],
        checkpoints=staging / "checkpoints",
        config=json.loads(json.dumps(to_dict(cfg))),
        history=history,
    )
    state["trainer"] = trainer
    got = trainer.load() if cfg.run.resume else None
    if got is not None:
        history[:] = got["history"]
    if main:
        _restart_logs(staging, got, history)
    if is_quiet():
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    episodes_run = trainer.state.episode - (trainer.args.batch_size * got["step"] if got else 0)
    model = trainer.accelerator.unwrap_model(trainer.model).policy
    if not main:  # the same weights as rank 0's, which writes them
        return None
    after, after_texts, _ = pr.mean_reward(model, tokenizer, scorer, held, **gen)
    info(f"held-out greedy reward after: {after:.4f}")
    kls = [h["kl"] for h in history if h.get("kl") is not None]
    metrics: dict[str, Any] = {
        "reward_before": before,
        "reward_after": after,
        "reward_before_normalised": scorer.normalise(before),
        "reward_after_normalised": scorer.normalise(after),
        "final_kl": kls[-1] if kls else None,
        "max_kl": max(kls) if kls else None,
        "steps": trainer.state.global_step,
        "episodes": trainer.state.episode,
        "train_prompts": len(train_prompts),
        "held_out_prompts": len(held),
        "episodes_per_s": round(episodes_run / max(1e-9, seconds), 3),
        "resumed_from_step": got["step"] if got else None,
        "seconds": round(seconds, 3),
        "first_train_reward": history[0]["reward_raw"] if history else None,
        "last_train_reward": history[-1]["reward_raw"] if history else None,
        "lora": cfg.lora.enabled,
        "nproc": trainer.accelerator.num_processes,
        "examples": [
            {"prompt": p, "before": b, "after": a}
            for p, b, a in list(zip(held, before_texts, after_texts, strict=True))[:3]
        ],
    }
    _finish(cfg, staging, model, tokenizer, history)
    return metrics


def _restart_logs(staging: Path, got: dict[str, Any] | None, history: list[dict[str, Any]]) -> None:
    """A fresh run starts its logs afresh; a resumed one keeps the rows up to its checkpoint's step
    (the rows written after it are logged again as the steps are repeated)."""
    log, samples = staging / "ppo_log.jsonl", staging / "samples.jsonl"
    if got is None:
        log.unlink(missing_ok=True)
        samples.unlink(missing_ok=True)
        return
    info(f"resuming PPO after step {got['step']} ({got['path']})")
    write_atomic(log, "".join(json.dumps(h) + "\n" for h in history))
    kept = []
    if samples.is_file():
        rows = [x for x in samples.read_text().splitlines() if x.strip()]
        kept = [x for x in rows if json.loads(x)["step"] <= got["step"]]
    write_atomic(samples, "".join(x + "\n" for x in kept))


def _finish(cfg: PpoConfig, staging: Path, model: Any, tokenizer: Any, history: list[dict[str, Any]]) -> None:
    if cfg.lora.enabled:  # the engine saves only the adapter: keep it, and merge it for hf/
        model.save_pretrained(staging / "adapter", safe_serialization=True)
        model = model.merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    hf.save_model(model, staging / "hf")
    tokenizer.padding_side = "right"  # the engine needs left padding; what we ship is the model's own
    hf.save_tokenizer(tokenizer, staging / "hf")
    _write_logs(history, staging)
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)  # only --resume reads them


def _write_logs(history: list[dict[str, Any]], staging: Path) -> None:
    with open(staging / "ppo_log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for h in history:
            w.writerow(["" if h.get(c) is None else h[c] for c in CSV_COLUMNS])
    write_atomic(staging / "ppo_log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("reward_raw", "reward (raw)"),
        ("reward", "reward (normalised)"),
        ("kl", "KL to reference"),
        ("entropy", "entropy"),
        ("value_loss", "value loss"),
        ("clipfrac", "clip fraction"),
        ("response_length", "response length"),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(12, 5))
    steps = [h["step"] for h in history]
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        ax.plot(steps, [h.get(key) for h in history], marker=".")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    axes.flat[-1].axis("off")
    fig.tight_layout()
    fig.savefig(staging / "ppo_curves.png", dpi=100, metadata={"Software": None})
    plt.close(fig)
