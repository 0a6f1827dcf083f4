"""`llmctl bon`: best-of-N sampling (survey 5.2.3, "effective RL training") and, with --sft,
rejection-sampling fine-tuning on the winners through `llmctl sft`.

    llmctl bon runs/sft --reward-model runs/rm --prompts prompts.jsonl --n 4 --out runs/bon
    llmctl bon runs/sft --reward-model runs/rm --prompts prompts.jsonl --n 8 --out runs/bon --sft \
        --set sft_recipe=recipes/sft/tiny.yaml

For every training prompt the policy samples N responses (seeded; bon.temperature, bon.top_p), the
reward model scores each (as `llmctl score` does: text through the reward model's own chat
template, so the policy's and the reward model's vocabularies may differ), the best is kept.
Artifact: data/samples.jsonl (every prompt with all N responses and rewards, best and worst),
prefs/pairs.jsonl (prompt, chosen = best, rejected = worst; a prompt whose N rewards tie has no
pair), sft/winners.jsonl (chats ending in the best response), rewards.png (all samples vs the
chosen ones), and with --sft the tuned policy as a complete sft artifact in sft_model/.
Held-out prompts measure the mean reward of the policy's greedy answers before and after --sft.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from llmctl import artifacts, hf
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info
from llmctl.errors import UserError
from llmctl.ppo import prompts as pr
from llmctl.ppo.config import BonConfig
from llmctl.ppo.stage import check_reward_model, policy_tokenizer


def _summary(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "n": len(s),
        "mean": statistics.fmean(s),
        "std": statistics.pstdev(s) if len(s) > 1 else 0.0,
        "min": s[0],
        "median": s[len(s) // 2],
        "max": s[-1],
    }


def run(cfg: BonConfig) -> Manifest:
    """Sample, score and select on `cfg.prompts`; optionally tune on the winners; commit `cfg.run.out`."""
    out = cfg.run.out_dir("bon")
    if not cfg.model:
        raise UserError("bon needs a POLICY: an sft artifact or a Hugging Face causal-LM directory")
    if not cfg.reward_model:
        raise UserError("bon needs --reward-model RM: an llmctl rm artifact")
    if not cfg.prompts:
        raise UserError("bon needs --prompts FILE (JSONL of {prompt} or {messages})")
    model_dir = hf.model_dir(cfg.model)
    what = f"policy {cfg.model}"
    rm = check_reward_model(cfg.reward_model)
    tokenizer, stop = policy_tokenizer(model_dir, what)
    skipped: dict[str, int] = {}
    prompts = pr.read_prompts(cfg.prompts, system_prompt=cfg.data.system_prompt, skipped=skipped)
    train_prompts, held = pr.split(prompts, cfg.data.held_out, cfg.bon.seed)
    sft_cfg = _sft_config(cfg) if cfg.sft else None  # a bad sft recipe is exit 2 before sampling
    art = artifacts.begin(
        "bon",
        out,
        config=to_dict(cfg),
        inputs=[Path(cfg.model), rm, *(Path(p) for p in cfg.prompts)],
        force=cfg.run.force,
    )
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        import torch

        from llmctl.rm.scorer import Scorer

        device = hf.resolve_device(cfg.bon.device, key="bon.device")
        scorer = Scorer.load(rm, device=device)
        policy = hf.load_causal_lm(model_dir, what=what, dtype=torch.float32, device=device)
        gen = {"max_new_tokens": cfg.bon.max_new_tokens, "stop_id": stop, "batch_size": cfg.bon.batch_size}
        before, _, _ = pr.mean_reward(policy, tokenizer, scorer, held, **gen)
        torch.manual_seed(cfg.bon.seed)
        samples = pr.answer(
            policy, tokenizer, train_prompts, sample=True, n=cfg.bon.n,
            temperature=cfg.bon.temperature, top_p=cfg.bon.top_p, **gen,
        )  # fmt: skip
        flat_p = [p for p, s in zip(train_prompts, samples, strict=True) for _ in s]
        flat_r = pr.score(scorer, flat_p, [r for s in samples for r in s])
        records, pairs, winners, chosen = [], [], [], []
        for i, (prompt, responses) in enumerate(zip(train_prompts, samples, strict=True)):
            rewards = flat_r[i * cfg.bon.n : (i + 1) * cfg.bon.n]
            best = max(range(len(rewards)), key=rewards.__getitem__)
            worst = min(range(len(rewards)), key=rewards.__getitem__)
            chosen.append(rewards[best])
            records.append({
                "prompt": prompt,
                "responses": [{"response": r, "reward": w} for r, w in zip(responses, rewards, strict=True)],
                "best": best,
                "worst": worst,
            })  # fmt: skip
            if rewards[best] > rewards[worst] and responses[best].strip() and responses[worst].strip():
                pairs.append({"prompt": prompt, "chosen": responses[best], "rejected": responses[worst]})
            if responses[best].strip():
                winners.append({"messages": [*prompt, {"role": "assistant", "content": responses[best]}]})
        for rel, rows in (("data/samples.jsonl", records), ("prefs/pairs.jsonl", pairs),
                          ("sft/winners.jsonl", winners)):  # fmt: skip
            (art.staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (art.staging / rel).write_text("".join(json.dumps(r) + "\n" for r in rows))
        _plot(flat_r, chosen, art.staging / "rewards.png")
        metrics: dict[str, Any] = {
            "prompts": len(train_prompts),
            "held_out_prompts": len(held),
            "n": cfg.bon.n,
            "reward_all": _summary(flat_r),
            "reward_chosen": _summary(chosen),
            "pairs": len(pairs),
            "winners": len(winners),
            "policy_reward_before": before,
            "prompts_skipped": skipped,
        }
        info(f"best-of-{cfg.bon.n}: mean reward {metrics['reward_all']['mean']:.4f} (all) -> "
             f"{metrics['reward_chosen']['mean']:.4f} (chosen)")  # fmt: skip
        if sft_cfg is not None:
            if not winners:
                raise UserError("bon --sft: no non-empty winning response to tune on")
            del policy
            metrics["policy_reward_after"] = _tune(cfg, sft_cfg, art.staging, scorer, tokenizer, held, gen)
        summary = {k: metrics[k] for k in ("prompts", "n", "pairs", "policy_reward_before")}
        summary["reward_chosen_mean"] = metrics["reward_chosen"]["mean"]
        if "policy_reward_after" in metrics:
            summary["policy_reward_after"] = metrics["policy_reward_after"]
        return art.commit(metrics, summary)


def _sft_config(cfg: BonConfig) -> Any:
    """The sft stage's config for --sft: its recipe and --set overrides, the policy as its model."""
    from llmctl import config as cfgmod
    from llmctl.sft.config import SftConfig

    recipe = cfg.sft_recipe or None
    if recipe and not Path(recipe).is_file():
        raise UserError(f"sft_recipe: {recipe} does not exist")
    return cfgmod.load(SftConfig, recipe, list(cfg.sft_set), {"model": cfg.model})


def _tune(cfg: BonConfig, sft_cfg: Any, staging: Path, scorer: Any, tokenizer: Any, held: list,
          gen: dict[str, Any]) -> float:  # fmt: skip
    """Rejection-sampling fine-tuning: llmctl sft on the winners into staging/sft_model; the tuned
    policy's held-out greedy reward."""
    import torch

    from llmctl import sft
    from llmctl.config import with_run
    from llmctl.sft.config import add_data_args

    add_data_args(sft_cfg, [f"winners={staging / 'sft' / 'winners.jsonl'}"])
    sft.run(with_run(sft_cfg, out=staging / "sft_model", inputs=[Path(cfg.model)]))
    first = next(iter(scorer.parts.values()))[0] if hasattr(scorer, "parts") else scorer  # combined
    device = next(first.model.parameters()).device.type
    tuned = hf.load_causal_lm(staging / "sft_model", what="bon's tuned policy", dtype=torch.float32,
                              device=device)  # fmt: skip
    after, _, _ = pr.mean_reward(tuned, tokenizer, scorer, held, **gen)
    info(f"held-out greedy reward after --sft: {after:.4f}")
    return after


def _plot(all_rewards: list[float], chosen: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(all_rewards, bins=30, alpha=0.6, density=True, label=f"all samples ({len(all_rewards)})")
    ax.hist(chosen, bins=30, alpha=0.6, density=True, label=f"chosen ({len(chosen)})")
    ax.set_xlabel("reward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
