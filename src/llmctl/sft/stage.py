"""`llmctl sft`: instruction tuning (survey 5.1) with TRL's SFTTrainer, optionally LoRA (5.3).

    llmctl sft runs/demo/pretrain chat=data/sft/chitchat.jsonl.zst --out runs/demo/sft \
        --config recipes/sft/tiny.yaml
    llmctl sft models/smollm2 data/chat.jsonl --lora --out runs/sft-lora

This module owns the data: every source is read, normalised to `{"messages": [...]}` (rejects
to rejected/ with a reason: kept + rejected = input), checked against the maximum length, split
into a held-out set and the stages' mixtures. `llmctl.sft.train` runs the trainer on them.
Artifact: hf/ (merged full weights, tokenizer with the training chat template, generation
config), adapter/ (LoRA only), examples.json (the realised mixture), loss_curve.csv/.png.
"""

from __future__ import annotations

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
from llmctl.sft import mixing
from llmctl.sft.config import SftConfig, StageConfig
from llmctl.sft.data import Reject, Template, normalise

Example = dict[str, Any]  # {"messages": [...]}


def run(cfg: SftConfig) -> Manifest | None:
    """Tune `cfg.model` on `cfg.data.sources`, commit `cfg.run.out`. With nproc > 1 it starts that
    many ranks through torchrun; under torchrun (`torchrun ... -m llmctl sft`, srun) this process is
    one rank. Returns the manifest (None on ranks other than 0)."""
    out = cfg.run.out_dir("sft")
    if not cfg.model:
        raise UserError(
            "sft needs a MODEL: a Hugging Face causal-LM directory or an llmctl artifact with hf/"
        )
    if not cfg.data.sources:
        raise UserError("sft needs DATA: NAME=PATH[:WEIGHT] or a path (or data.sources in the recipe)")
    model_dir = hf.model_dir(cfg.model)
    config = hf.load_config(model_dir, what=f"model {cfg.model}")  # one that does not load: exit 2 now
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and cfg.data.max_length > context:
        raise UserError(
            f"data.max_length={cfg.data.max_length} is above the model's context of {context} tokens"
        )
    if cfg.train.fsdp and hf.resolve_device(cfg.train.device, key="train.device") == "cpu":
        raise UserError(
            "train.fsdp: transformers shards models with FSDP on GPUs only; on CPU set train.fsdp: false "
            "(--nproc N is then plain data parallelism)"
        )
    tokenizer = hf.load_tokenizer(model_dir, what=f"model {cfg.model}")
    _set_training_template(tokenizer, cfg)
    if cfg.lora.enabled:  # on a weightless copy: a wrong target is exit 2 before any loading
        from llmctl.sft.train import lora_targets

        lora_targets(hf.skeleton_causal_lm(model_dir, what=f"model {cfg.model}"), cfg.lora.target_modules)
    stages = _stages(cfg)
    templates = {
        n: Template.load(_resolve(s.template, cfg)) for n, s in cfg.data.sources.items() if s.template
    }
    # the model as given (an artifact: lineage walks on through it), the data, the templates; a
    # directory input is hashed whole (a model directory holds no document suffixes)
    inputs = [
        Path(cfg.model),
        *(_resolve(s.path, cfg) for s in cfg.data.sources.values()),
        *templates.values(),
    ]
    setup = {"out": out, "model_dir": model_dir, "tokenizer": tokenizer, "stages": stages}
    setup["templates"], setup["inputs"] = templates, inputs
    from llmctl.sft import train

    def train_on(staging: Path, data: dict[str, Any]) -> ranks.Result | None:
        return train.train(cfg, staging, model_dir, tokenizer, **data)

    if launch.under_torchrun():
        return ranks.run_as_rank(cfg, lambda: _begin(cfg, setup), lambda a: _prepare(cfg, setup, a), train_on)
    if cfg.nproc > 1:
        return ranks.start(cfg, out, "llmctl.sft.stage")
    art = _begin(cfg, setup)
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        result = train_on(art.staging, _prepare(cfg, setup, art))
        assert result is not None
        return art.commit(*result)


def _begin(cfg: SftConfig, setup: dict[str, Any]) -> artifacts.StageRun:
    # the model as given (an artifact: lineage walks on through it), the data, the templates; a
    # directory input is hashed whole (a model directory holds no document suffixes)
    return artifacts.begin(
        "sft",
        setup["out"],
        config=_recorded(cfg),
        inputs=[p if isinstance(p, Path) else Path(p.path) for p in setup["inputs"]],  # a Template: its file
        force=cfg.run.force,
        resume=cfg.run.resume,
    )


def _prepare(cfg: SftConfig, setup: dict[str, Any], art: artifacts.StageRun) -> dict[str, Any]:
    """Read, normalise, fit, hold out and mix the data: what every rank trains on."""
    pools, counts = _read_sources(cfg, setup["templates"], art)
    pools = _fit_length(pools, setup["tokenizer"], cfg, counts)
    held_out, pools = _hold_out(pools, cfg)
    plan = _plan_stages(cfg, setup["stages"], pools)
    # what eval checks its items against (llmctl.contamination): the text of every trained example
    texts = (contamination.messages_text(ex["messages"]) for p in plan for ex in p["examples"])
    contamination.record_index(art.staging, texts)
    return {"plan": plan, "held_out": held_out, "counts": counts}


def _recorded(cfg: SftConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("run", None)
    return d


def _resolve(path: str | None, cfg: SftConfig) -> Path:
    """A recipe's relative path is relative to the recipe; a flag's to the working directory."""
    p = Path(path or "")
    if not p.is_absolute() and cfg.run.recipe_dir is not None and (cfg.run.recipe_dir / p).exists():
        return cfg.run.recipe_dir / p
    return p


def _set_training_template(tokenizer: Any, cfg: SftConfig) -> None:
    if cfg.chat_template:
        if not hf.has_generation_markers(cfg.chat_template):
            raise UserError(
                "chat_template: has no {% generation %} markers (needed for the assistant-only loss)"
            )
        tokenizer.chat_template = cfg.chat_template
    elif cfg.train.assistant_only_loss:
        tokenizer.chat_template = hf.training_template(tokenizer, where=f"model {cfg.model}")


def _stages(cfg: SftConfig) -> list[StageConfig]:
    stages = cfg.stages or [StageConfig(name="sft", sources=list(cfg.data.sources))]
    for s in stages:
        unknown = sorted(set(s.sources) - set(cfg.data.sources))
        if unknown:
            raise UserError(
                f"stages.{s.name}.sources: no data source named {', '.join(unknown)} "
                f"(sources: {', '.join(cfg.data.sources)})"
            )
    return stages


def _read_sources(
    cfg: SftConfig, templates: dict[str, Template], art: artifacts.StageRun
) -> tuple[dict[str, list[Example]], dict[str, dict[str, Any]]]:
    """Every source normalised; the rejects written to rejected/ with their reason."""
    pools: dict[str, list[Example]] = {}
    counts: dict[str, dict[str, Any]] = {}
    (art.staging / "rejected").mkdir(exist_ok=True)
    with documents.ShardWriter(art.staging / "rejected") as rejected:
        for name, src in cfg.data.sources.items():
            files = documents.expand([_resolve(src.path, cfg)])
            template = templates.get(name)
            rng = random.Random(f"{cfg.train.seed}:{name}")
            kept: list[Example] = []
            reasons: dict[str, int] = {}
            seen = 0
            for source, line, row in documents.rows(files):
                seen += 1
                if template is not None and seen == 1 and isinstance(row, dict):
                    template.check_columns(set(row))
                try:
                    if isinstance(row, Malformed):
                        raise Reject("bad_record", row.error)
                    ex = normalise(row, template=template, rng=rng)
                except Reject as r:
                    reasons[r.reason] = reasons.get(r.reason, 0) + 1
                    rec = {"source": name, "file": source.name, "line": line, "reason": r.reason}
                    rec["detail"] = r.detail
                    rec["record"] = row.raw if isinstance(row, Malformed) else row
                    rejected.write(rec)
                    continue
                kept.append(_with_system(ex, cfg.data.system_prompt))
            if not kept:
                raise UserError(
                    f"source '{name}' ({src.path}): no usable records of {seen} "
                    f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items())) or 'empty'})"
                )
            pools[name] = kept
            counts[name] = {
                "input": seen,
                "kept": len(kept),
                "rejected": seen - len(kept),
                "reasons": reasons,
            }
            info(f"source {name}: {len(kept):,} of {seen:,} records usable")
    return pools, counts


def _with_system(ex: Example, system: str) -> Example:
    if system and ex["messages"][0]["role"] != "system":
        return {"messages": [{"role": "system", "content": system}, *ex["messages"]]}
    return ex


def _fit_length(
    pools: dict[str, list[Example]], tokenizer: Any, cfg: SftConfig, counts: dict[str, dict[str, Any]]
) -> dict[str, list[Example]]:
    """Count (truncate) or drop the examples longer than data.max_length tokens."""
    probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
    overhead = len(
        hf.chat_ids(tokenizer, _with_system({"messages": probe}, cfg.data.system_prompt)["messages"])
    )
    if cfg.data.max_length <= overhead:
        raise UserError(
            f"data.max_length={cfg.data.max_length} is not above the chat template's own {overhead} tokens "
            "for a one-word exchange; raise it"
        )
    fitted = {}
    for name, pool in pools.items():
        keep = []
        over = 0
        for ex in pool:
            if len(hf.chat_ids(tokenizer, ex["messages"])) > cfg.data.max_length:
                over += 1
                if cfg.data.overlong == "drop":
                    continue
            keep.append(ex)
        counts[name]["overlong"] = over
        counts[name]["overlong_" + ("dropped" if cfg.data.overlong == "drop" else "truncated")] = over
        if not keep:
            raise UserError(
                f"source '{name}': every example is longer than data.max_length={cfg.data.max_length}"
            )
        fitted[name] = keep
    return fitted


def _hold_out(
    pools: dict[str, list[Example]], cfg: SftConfig
) -> tuple[list[Example], dict[str, list[Example]]]:
    """data.held_out examples, drawn across the sources in proportion, kept out of training."""
    total = sum(len(p) for p in pools.values())
    if total <= cfg.data.held_out:
        raise UserError(f"data.held_out={cfg.data.held_out} leaves no training example of {total}; lower it")
    shares = mixing.plan(
        {k: len(v) for k, v in pools.items()}, strategy="proportional", total=cfg.data.held_out
    )
    rng = random.Random(f"{cfg.train.seed}:held-out")
    held, rest = [], {}
    for name in sorted(pools):
        idx = list(range(len(pools[name])))
        rng.shuffle(idx)
        n = min(shares[name], len(idx) - 1)
        held.extend(pools[name][i] for i in idx[:n])
        rest[name] = [pools[name][i] for i in sorted(idx[n:])]
    return held, rest


def _plan_stages(
    cfg: SftConfig, stages: list[StageConfig], pools: dict[str, list[Example]]
) -> list[dict[str, Any]]:
    """Each stage's examples: the mixture of its sources, identity examples, replay of earlier ones."""
    identity = [
        {
            "messages": [
                {"role": "user", "content": e["prompt"]},
                {"role": "assistant", "content": e["answer"]},
            ]
        }
        for e in cfg.data.identity
    ]
    identity = [_with_system(e, cfg.data.system_prompt) for e in identity]
    plan, earlier = [], []
    text_docs = _pretrain_docs(cfg)
    for i, stage in enumerate(stages):
        names = stage.sources or list(pools)
        counts = mixing.plan(
            {n: min(len(pools[n]), cfg.data.sources[n].max_examples or len(pools[n])) for n in names},
            strategy=cfg.data.mix.strategy,
            max_examples=cfg.data.mix.max_examples,
            weights={n: cfg.data.sources[n].weight for n in names if cfg.data.sources[n].weight is not None},
            temperature=cfg.data.mix.temperature,
            total=cfg.data.mix.total,
        )
        picked = mixing.draw({n: pools[n] for n in names}, counts, seed=cfg.train.seed + i)
        examples = [ex for _, ex in picked] + identity
        replayed = mixing.replay(
            earlier, stage.replay_fraction, len(examples), seed=cfg.train.seed + 1000 + i
        )
        realised = mixing.realised(picked)
        if identity:
            realised["identity"] = len(identity)
        if replayed:
            realised["replay"] = len(replayed)
            examples += replayed
        if text_docs:
            n = round(len(examples) * cfg.data.pretrain_ratio)
            texts = [
                x for _, x in mixing.draw({"text": text_docs}, {"text": n}, seed=cfg.train.seed + 3000 + i)
            ]
            examples += [{"messages": [{"role": "assistant", "content": t}]} for t in texts]
            realised["pretrain_text"] = n
        if replayed or text_docs:
            random.Random(cfg.train.seed + 2000 + i).shuffle(examples)
        earlier.extend(ex for _, ex in picked)
        plan.append({"stage": stage, "examples": examples, "per_source": realised})
        info(
            f"stage {stage.name}: {len(examples):,} examples "
            f"({', '.join(f'{k} {v}' for k, v in realised.items())})"
        )
    return plan


def _pretrain_docs(cfg: SftConfig) -> list[str]:
    """The regulariser's documents (data.pretrain_text), cut to about data.max_length tokens' worth
    of characters (TRL truncates what remains over)."""
    if not cfg.data.pretrain_text or cfg.data.pretrain_ratio <= 0:
        return []
    files = documents.expand([_resolve(cfg.data.pretrain_text, cfg)])
    docs = [d.text[: cfg.data.max_length * 6] for d in documents.read(files) if not isinstance(d, Malformed)]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise UserError(f"data.pretrain_text {cfg.data.pretrain_text}: no readable documents")
    return docs
