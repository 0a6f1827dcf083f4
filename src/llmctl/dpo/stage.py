"""`llmctl dpo`: direct preference optimisation (survey 5.2.4) with TRL's DPOTrainer: the policy
learns from preference pairs with no reward model and no RL loop.

    llmctl dpo runs/demo/sft mc=data/rm/mc-pairs.jsonl.zst --out runs/demo/dpo --config recipes/dpo/demo.yaml
    llmctl dpo models/smollm2 prefs.jsonl --lora --config recipes/dpo/lora.yaml --out runs/dpo-lora

This module owns the data, and reads it exactly as `llmctl rm` does (llmctl.rm.stage.read_sources
and llmctl.rm.data: pairs, K-way rankings expanded to pairs, ratings with a score gap; bad records
to rejected/ with a reason, kept + rejected = input; the prompt-level held-out split). A pair whose
rendered prompt + response is longer than data.max_length is dropped, counted and written to
rejected/ (TRL would truncate it, which changes what is preferred). `llmctl.dpo.train` trains.
Artifact: hf/ (the policy, merged when LoRA, tokenizer + chat template), adapter/ (LoRA only),
loss_curve.csv/.png, metrics in manifest.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmctl import artifacts, contamination, hf, launch, ranks
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info
from llmctl.dpo.config import DpoConfig, resolve
from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.rm.data import Pair, split_by_prompt
from llmctl.rm.scorer import render_ids

Example = dict[str, Any]  # TRL's conversational preference columns + ids for the held-out measures


def run(cfg: DpoConfig) -> Manifest | None:
    """Align `cfg.model` on `cfg.data.sources`, commit `cfg.run.out`. With nproc > 1 it starts that
    many data-parallel ranks through torchrun; under torchrun or srun this process is one rank
    (llmctl.ranks). Returns the manifest (None on ranks other than 0)."""
    out = cfg.run.out_dir("dpo")
    if not cfg.model:
        raise UserError(
            "dpo needs a POLICY: a Hugging Face causal-LM directory or an llmctl artifact with hf/"
        )
    if not cfg.data.sources:
        raise UserError("dpo needs PREFS: NAME=PATH or a path (or data.sources in the recipe)")
    model_dir = hf.model_dir(cfg.model)
    what = f"model {cfg.model}"
    config = hf.load_config(model_dir, what=what)  # one that does not load: exit 2 now
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and cfg.data.max_length > context:
        raise UserError(
            f"data.max_length={cfg.data.max_length} is above the model's context of {context} tokens"
        )
    ref_dir = None
    if cfg.reference.model:
        ref_dir = hf.model_dir(cfg.reference.model)
        hf.load_config(ref_dir, what=f"reference.model {cfg.reference.model}")
    tokenizer = prepare_tokenizer(model_dir, cfg)
    if cfg.lora.enabled:  # on a weightless copy: a wrong target is exit 2 before any loading
        from llmctl.sft.train import lora_targets

        lora_targets(hf.skeleton_causal_lm(model_dir, what=what), cfg.lora.target_modules)
    paths = {n: resolve(s.path, cfg) for n, s in cfg.data.sources.items()}
    for name, p in paths.items():
        if not p.exists():
            raise UserError(f"data.sources.{name}: {p} does not exist")
    inputs = [Path(cfg.model), *([Path(cfg.reference.model)] if cfg.reference.model else []), *paths.values()]

    def begin() -> artifacts.StageRun:
        return artifacts.begin(
            "dpo", out, config=_recorded(cfg), inputs=inputs, force=cfg.run.force, resume=cfg.run.resume
        )

    def prepare(art: artifacts.StageRun) -> dict[str, Any]:
        from llmctl.rm.stage import read_sources

        # rm's reader reads only cfg.data.* and cfg.train.seed, which DpoConfig shares by design
        pairs, counts = read_sources(cfg, paths, art.staging / "rejected")  # type: ignore[arg-type]
        train_ex, held_ex = tokenize_and_split(pairs, tokenizer, cfg, counts, art.staging / "rejected")
        contamination.record_index(art.staging, contamination.pair_texts(train_ex))  # for eval
        return {"train_ex": train_ex, "held_ex": held_ex, "counts": counts}

    def train_on(staging: Path, data: dict[str, Any]) -> ranks.Result:
        from llmctl.dpo import train

        metrics = train.train(cfg, staging, model_dir, ref_dir, tokenizer, **data)
        keys = ("held_out_accuracy_before", "held_out_accuracy_after", "held_out_kl_after", "steps")
        return metrics, {k: metrics[k] for k in (*keys, "pairs_per_s")}

    if launch.under_torchrun():
        return ranks.run_as_rank(cfg, begin, prepare, train_on)
    if cfg.nproc > 1:
        return ranks.start(cfg, out, "llmctl.dpo.stage")
    art = begin()
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        return art.commit(*train_on(art.staging, prepare(art)))


def prepare_tokenizer(model_dir: Path, cfg: DpoConfig) -> Any:
    """The policy's tokenizer with the chat template the pairs are rendered with and a pad token."""
    tokenizer = hf.load_tokenizer(model_dir, what=f"model {cfg.model}")
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    if hf.chat_template(tokenizer) is None:
        raise UserError(
            f"model {cfg.model}: the tokenizer has no chat template to render prompts and responses with; "
            "set chat_template in the recipe"
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"model {cfg.model}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _recorded(cfg: DpoConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run", None)
    return d


def tokenize_and_split(
    pairs: list[Pair],
    tokenizer: Any,
    cfg: DpoConfig,
    counts: dict[str, dict[str, Any]],
    rejected_dir: Path,
) -> tuple[list[Example], list[Example]]:
    """Each pair as TRL's conversational columns plus its rendered ids (overlong pairs dropped,
    counted and written to rejected/), split by prompt into (train, held-out)."""
    kept: list[Pair] = []
    examples: dict[int, Example] = {}
    with documents.ShardWriter(rejected_dir, prefix="pairs") as rejected:
        for p in pairs:
            chosen, start = render_ids(tokenizer, p.prompt, p.chosen)
            rejected_ids, start_r = render_ids(tokenizer, p.prompt, p.rejected)
            longest = max(len(chosen), len(rejected_ids))
            if longest > cfg.data.max_length:
                counts[p.source]["pairs_overlong"] = counts[p.source].get("pairs_overlong", 0) + 1
                detail = f"{longest} > {cfg.data.max_length} tokens"
                rejected.write({**p.to_dict(), "reason": "overlong", "detail": detail})
                continue
            examples[id(p)] = {
                "prompt": p.prompt,
                "chosen": p.chosen,
                "rejected": p.rejected,
                "chosen_ids": chosen,
                "rejected_ids": rejected_ids,
                "chosen_start": start,
                "rejected_start": start_r,
                "source": p.source,
            }
            kept.append(p)
    for name, c in counts.items():
        c["pairs_used"] = c["pairs"] - c.get("pairs_overlong", 0)
        if c["pairs_used"] == 0:
            raise UserError(
                f"source '{name}': every pair is longer than data.max_length={cfg.data.max_length}"
            )
    train, held = split_by_prompt(kept, cfg.data.held_out, cfg.train.seed)
    train_ex, held_ex = [examples[id(p)] for p in train], [examples[id(p)] for p in held]
    for name, c in counts.items():
        c["train_pairs"] = sum(1 for e in train_ex if e["source"] == name)
        c["held_out_pairs"] = sum(1 for e in held_ex if e["source"] == name)
    info(f"{len(train_ex):,} training pairs, {len(held_ex):,} held out ({cfg.data.held_out} prompts)")
    return train_ex, held_ex
