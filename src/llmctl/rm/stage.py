"""`llmctl rm`: a reward model from human preferences (survey 5.2.2-5.2.3) with TRL's RewardTrainer.

    llmctl rm runs/demo/sft prefs=data/rm/mc-pairs.jsonl.zst --out runs/demo/rm --config recipes/rm/tiny.yaml
    llmctl rm models/smollm2 prefs.jsonl --lora --config recipes/rm/lora.yaml --out runs/rm-lora

This module owns the data: every source's records (pairs, rankings, ratings; see data.py) become
pairs, or rejected/ records with a reason (kept + rejected = input records); pairs are rendered
through the chat template and tokenized; a pair longer than data.max_length is dropped and
counted; data.held_out prompts, with all their pairs, are kept out. `llmctl.rm.train` trains.
Artifact: hf/ (the 1-label sequence classifier, tokenizer and chat template), reward.json (how to
score: template, max length, reward mean/std), adapter/ (LoRA only), loss_curve.csv/.png.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from llmctl import artifacts, contamination, hf, launch, ranks
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info
from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.formats.documents import Malformed
from llmctl.rm.config import RmConfig
from llmctl.rm.data import Pair, Reject, SourceReader, split_by_prompt
from llmctl.rm.scorer import REWARD_JSON, render_ids

Example = dict[str, Any]  # {"chosen_ids", "rejected_ids", "chosen_start", "source", "margin"?}


def run(cfg: RmConfig) -> Manifest | None:
    """Train a reward model on `cfg.model` from `cfg.data.sources`, commit `cfg.run.out`. With
    nproc > 1 it starts that many data-parallel ranks through torchrun; under torchrun or srun this
    process is one rank (llmctl.ranks). Returns the manifest (None on ranks other than 0)."""
    out = cfg.run.out_dir("rm")
    if not cfg.model:
        raise UserError("rm needs a MODEL: a Hugging Face causal-LM directory or an llmctl artifact with hf/")
    if cfg.criteria and cfg.data.sources:
        raise UserError(
            "rm: give PREFS (one reward model) or --criterion NAME=PREFS (one per criterion), not both"
        )
    if not cfg.data.sources and not cfg.criteria:
        raise UserError("rm needs PREFS: NAME=PATH or a path (or data.sources in the recipe), or --criterion")
    for name, c in cfg.criteria.items():
        if not c.path:
            raise UserError(f"criteria.{name}.path: no preference data; --criterion {name}=PATH")
    model_dir = hf.model_dir(cfg.model)
    what = f"model {cfg.model}"
    config = hf.load_config(model_dir, what=what)
    hf.check_sequence_classifier(config, what=what)
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and cfg.data.max_length > context:
        raise UserError(
            f"data.max_length={cfg.data.max_length} is above the model's context of {context} tokens"
        )
    tokenizer = prepare_tokenizer(model_dir, cfg)
    if cfg.lora.enabled:  # on a weightless copy: a wrong target is exit 2 before any loading
        from llmctl.sft.train import lora_targets

        lora_targets(hf.skeleton_sequence_classifier(model_dir, what=what), cfg.lora.target_modules)
    given = cfg.criteria or cfg.data.sources
    paths = {n: _resolve(s.path, cfg) for n, s in given.items()}
    for name, p in paths.items():
        if not p.exists():
            raise UserError(f"{'criteria' if cfg.criteria else 'data.sources'}.{name}: {p} does not exist")

    def begin() -> artifacts.StageRun:
        return artifacts.begin(
            "rm",
            out,
            config=_recorded(cfg),
            inputs=[Path(cfg.model), *paths.values()],
            force=cfg.run.force,
            resume=cfg.run.resume,
        )

    def prepare(art: artifacts.StageRun) -> dict[str, Any]:
        pairs, counts = read_sources(cfg, paths, art.staging / "rejected")
        # eval's contamination check (llmctl.contamination); held-out pairs too: a safe superset
        contamination.record_index(art.staging, contamination.pair_texts(pairs))
        if cfg.criteria:  # tokenized here, on rank 0 only: it writes rejected/
            split = {
                name: tokenize_and_split(
                    [p for p in pairs if p.source == name],
                    tokenizer,
                    cfg,
                    {name: counts[name]},
                    art.staging / "rejected",
                    prefix=f"pairs-{name}",
                )
                for name in cfg.criteria
            }
            return {"split": split, "counts": counts}
        train_ex, held_ex = tokenize_and_split(pairs, tokenizer, cfg, counts, art.staging / "rejected")
        return {"train_ex": train_ex, "held_ex": held_ex, "counts": counts}

    def train_on(staging: Path, data: dict[str, Any]) -> ranks.Result:
        if cfg.criteria:
            return _train_criteria(cfg, staging, model_dir, tokenizer, data["split"], data["counts"])
        from llmctl.rm import train

        metrics = train.train(cfg, staging, model_dir, tokenizer, **data)
        keys = ("held_out_accuracy_before", "held_out_accuracy_after", "steps", "train_pairs", "pairs_per_s")
        return metrics, {k: metrics[k] for k in keys}

    if launch.under_torchrun():
        return ranks.run_as_rank(cfg, begin, prepare, train_on)
    if cfg.nproc > 1:
        return ranks.start(cfg, out, "llmctl.rm.stage")
    art = begin()
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        return art.commit(*train_on(art.staging, prepare(art)))


def _train_criteria(
    cfg: RmConfig, staging: Path, model_dir: Path, tokenizer: Any, split: dict[str, Any], counts: dict
) -> ranks.Result:
    """One reward model per criterion under criteria/NAME/ (a finished one is kept on --resume),
    then reward.json for the combined scorer (llmctl.rm.scorer.CombinedScorer)."""
    from llmctl.rm import train

    results: dict[str, Any] = {}
    for name in cfg.criteria:
        directory = staging / "criteria" / name
        done = directory / "metrics.json"
        if done.is_file():
            results[name] = json.loads(done.read_text())
            info(f"criterion {name}: finished before the interruption")
            continue
        train_ex, held_ex = split[name]
        info(f"criterion {name}: training its reward model")
        results[name] = train.train(
            cfg, directory, model_dir, tokenizer, train_ex, held_ex, {name: counts[name]}
        )
        if ranks.is_main():
            artifacts.write_atomic(done, json.dumps(results[name], indent=2) + "\n")
        ranks.barrier()
    combined = {
        "combined": {n: {"path": f"criteria/{n}", "weight": c.weight} for n, c in cfg.criteria.items()},
        "score": "sum of weight * (reward - reward_mean) / reward_std over the criteria (their reward.json)",
    }
    if ranks.is_main():
        artifacts.write_atomic(staging / REWARD_JSON, json.dumps(combined, indent=2) + "\n")
    metrics = {
        "criteria": results,
        "weights": {n: c.weight for n, c in cfg.criteria.items()},
        "sources": counts,
    }
    summary: dict[str, Any] = {
        f"{n}.held_out_accuracy_after": r["held_out_accuracy_after"] for n, r in results.items()
    }
    summary["criteria"] = len(results)
    return metrics, summary


def prepare_tokenizer(model_dir: Path, cfg: RmConfig) -> Any:
    """The model's tokenizer with the chat template the pairs are rendered with and a pad token
    (the classifier finds each sequence's last token by it)."""
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


def _recorded(cfg: RmConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run", None)
    return d


def _resolve(path: str | None, cfg: RmConfig) -> Path:
    """A recipe's relative path is relative to the recipe; a flag's to the working directory."""
    p = Path(path or "")
    if not p.is_absolute() and cfg.run.recipe_dir is not None and (cfg.run.recipe_dir / p).exists():
        return cfg.run.recipe_dir / p
    return p


def read_sources(
    cfg: RmConfig, paths: dict[str, Path], rejected_dir: Path
) -> tuple[list[Pair], dict[str, dict[str, Any]]]:
    """Every source's pairs; unusable records to rejected/ with their reason."""
    pairs: list[Pair] = []
    counts: dict[str, dict[str, Any]] = {}
    rejected_dir.mkdir(parents=True, exist_ok=True)
    with documents.ShardWriter(rejected_dir, prefix="records") as rejected:
        for name, path in paths.items():
            reader = SourceReader(
                name,
                min_score_gap=cfg.data.min_score_gap,
                max_pairs_per_prompt=cfg.data.max_pairs_per_prompt,
                seed=cfg.train.seed,
                system_prompt=cfg.data.system_prompt,
            )
            reasons: dict[str, int] = {}
            seen = 0

            for source, line, row in documents.rows(documents.expand([path])):
                seen += 1
                try:
                    if isinstance(row, Malformed):
                        raise Reject("bad_record", row.error)
                    reader.add(row, f"{source.path}:{line}", source.name)
                except Reject as r:
                    raw = row.raw if isinstance(row, Malformed) else row
                    _reject(rejected, reasons, name, raw, f"{source.name}:{line}", r.reason, r.detail)
            got, unpaired = reader.finish()
            for row, where, reason, detail in unpaired:
                _reject(rejected, reasons, name, row, where, reason, detail)
            n_rejected = sum(reasons.values())
            src = cfg.data.sources.get(name)  # a criterion has no cap of its own
            cap = src.max_pairs if src is not None else None
            if cap is not None and len(got) > cap:
                keep = sorted(random.Random(f"{cfg.train.seed}:{name}:cap").sample(range(len(got)), cap))
                reader.dropped["over_max_pairs"] += len(got) - cap
                got = [got[i] for i in keep]
            if not got:
                raise UserError(
                    f"source '{name}' ({path}): no preference pairs from {seen} record(s) "
                    f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items())) or 'empty'})"
                )
            pairs.extend(got)
            counts[name] = {
                "input": seen,
                "kept": seen - n_rejected,
                "rejected": n_rejected,
                "reasons": reasons,
                "kinds": dict(reader.kinds),
                "pairs": len(got),
                "pairs_not_formed": dict(reader.dropped),
            }
            info(f"source {name}: {len(got):,} pairs from {seen - n_rejected:,} of {seen:,} records")
    return pairs, counts


def _reject(
    writer: Any, reasons: dict[str, int], source: str, row: Any, where: str, reason: str, detail: str
) -> None:
    """One rejected/ record (where = FILE:LINE), counted under its reason."""
    reasons[reason] = reasons.get(reason, 0) + 1
    writer.write({"source": source, "where": where, "reason": reason, "detail": detail, "record": row})


def tokenize_and_split(
    pairs: list[Pair],
    tokenizer: Any,
    cfg: RmConfig,
    counts: dict[str, dict[str, Any]],
    rejected_dir: Path,
    prefix: str = "pairs",
) -> tuple[list[Example], list[Example]]:
    """Each pair rendered and tokenized (overlong ones dropped, counted and written to rejected/),
    then split by prompt into (train, held-out)."""
    kept: list[Pair] = []
    examples: dict[int, Example] = {}
    with documents.ShardWriter(rejected_dir, prefix=prefix) as rejected:
        for p in pairs:
            chosen, start = render_ids(tokenizer, p.prompt, p.chosen)
            rejected_ids, _ = render_ids(tokenizer, p.prompt, p.rejected)
            if max(len(chosen), len(rejected_ids)) > cfg.data.max_length:
                counts[p.source]["pairs_overlong"] = counts[p.source].get("pairs_overlong", 0) + 1
                longest = max(len(chosen), len(rejected_ids))
                detail = f"{longest} > {cfg.data.max_length} tokens"
                rejected.write({**p.to_dict(), "reason": "overlong", "detail": detail})
                continue
            ex: Example = {"chosen_ids": chosen, "rejected_ids": rejected_ids, "chosen_start": start}
            ex["source"] = p.source
            ex["subset"] = f"{p.source}/{p.subset}" if p.subset else p.source
            if p.margin is not None and cfg.train.use_margin:
                ex["margin"] = p.margin
            examples[id(p)] = ex
            kept.append(p)
    for name, c in counts.items():
        c["pairs_used"] = c["pairs"] - c.get("pairs_overlong", 0)
        if c["pairs_used"] == 0:
            raise UserError(
                f"source '{name}': every pair is longer than data.max_length={cfg.data.max_length}"
            )
    train, held = split_by_prompt(kept, cfg.data.held_out, cfg.train.seed)
    train_ex, held_ex = [examples[id(p)] for p in train], [examples[id(p)] for p in held]
    if any("margin" in e for e in train_ex + held_ex):  # the collator needs it on every pair or none
        for e in train_ex + held_ex:
            e.setdefault("margin", 0.0)
    for name, c in counts.items():
        c["train_pairs"] = sum(1 for e in train_ex if e["source"] == name)
        c["held_out_pairs"] = sum(1 for e in held_ex if e["source"] == name)
    info(f"{len(train_ex):,} training pairs, {len(held_ex):,} held out ({cfg.data.held_out} prompts)")
    return train_ex, held_ex
