"""`llmctl clean`: quality filtering and privacy reduction (survey section 4.1).

    llmctl clean data/sample --out runs/demo/clean --config recipes/clean/default.yaml
    llmctl clean web.jsonl.zst --out runs/clean --num-shards 8 --shard-index 3   # one SLURM task

The input files are split into shards (one by default). Each shard is processed by a pool of
workers into `.DIR.staging/shards/NNNNN/` and marked done; when every shard is done, the
merge links the shard files into `data/` and `rejected/`, applies the perplexity band if
enabled, and commits the artifact. A killed run resumes at shard granularity.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmctl import artifacts, rejections, shards
from llmctl.artifacts import Manifest, write_atomic
from llmctl.clean.config import CleanConfig
from llmctl.clean.pipeline import ChunkResult, prepare, work
from llmctl.config import to_dict
from llmctl.console import data_progress
from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.parallel import batched, ordered_map, resolve_workers


def run(cfg: CleanConfig) -> Manifest | None:
    """Run this process's shard of `cfg.run.inputs`; merge and commit when all shards are done.

    Returns the manifest, or None when other shards are still running.
    """
    inputs, merge_only, resume = cfg.run.inputs, cfg.run.merge_only, cfg.run.resume
    if not inputs:
        raise UserError("clean needs at least one INPUT (an artifact, document files or directories)")
    out = cfg.run.out_dir("clean")
    sources = documents.expand(inputs)
    if cfg.perplexity.enabled and not (Path(cfg.perplexity.model or "") / "config.json").is_file():
        raise UserError(
            f"perplexity.model: {cfg.perplexity.model} is not a Hugging Face model directory (no config.json)"
        )
    if cfg.perplexity.enabled:  # a GPU asked for where there is none, custom code: exit 2 first
        from llmctl import hf

        hf.resolve_device(cfg.perplexity.device, key="perplexity.device")
        hf.refuse_custom_code(Path(cfg.perplexity.model or ""), "perplexity.model")
    recorded = to_dict(cfg)
    recorded.pop("shard_index")  # shards of one run share one config
    recorded.pop("workers")  # the output does not depend on it
    sharded = cfg.num_shards > 1 or merge_only
    art = artifacts.begin(
        "clean",
        out,
        config=recorded,
        inputs=inputs,
        force=cfg.run.force,
        resume=resume,
        shared=sharded,
        input_suffixes=documents.SUFFIXES,
    )
    if art.done:
        return art.manifest
    shards_dir = art.staging / "shards"
    if not merge_only:
        mine = [src for _, src in shards.mine(sources, cfg.num_shards, cfg.shard_index)]
        _run_shard(cfg, mine, shards_dir / f"{cfg.shard_index:05d}", cfg.run.recipe_dir)
    if not shards.claim_merge(
        shards_dir, art.staging, cfg.num_shards, merge_only=merge_only, resume=resume, out=out
    ):
        return None
    return _merge(cfg, art, shards_dir)


def _run_shard(
    cfg: CleanConfig, sources: list[documents.Source], shard: Path, recipe_dir: Path | None
) -> None:
    if not shards.start(shard):
        return
    workers = resolve_workers(cfg.workers)
    prepare(cfg, recipe_dir)
    cursor = documents.Cursor()
    records = documents.read(
        sources, text_field=cfg.input.text_field, id_field=cfg.input.id_field, cursor=cursor
    )
    total = _new_totals()
    t0 = time.perf_counter()
    with (
        documents.ShardWriter(shard / "data") as kept,
        documents.ShardWriter(shard / "rejected") as rejected,
        data_progress("clean", sum(s.path.stat().st_size for s in sources)) as bar,
    ):
        chunks = batched(records, cfg.chunk_size)
        for res in ordered_map(work, chunks, workers=workers):
            if cfg.strict and res.first_malformed is not None:
                m = res.first_malformed
                raise UserError(
                    f"{m.file}:{m.line}: malformed record ({m.error}); "
                    "run without --strict to reject and count such records instead"
                )
            for line in res.kept:
                kept.write_bytes(line)
            for line in res.rejected:
                rejected.write_bytes(line)
            _add(total, res)
            bar.update(cursor.position(), res.input_docs)
    stats = {k: dict(sorted(v.items())) if isinstance(v, dict) else v for k, v in total.items()}
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    write_atomic(shard / "stats.json", json.dumps(stats, indent=2, sort_keys=True))
    shards.finish(shard)


def _add(total: dict[str, Any], res: ChunkResult) -> None:
    """Fold one chunk's accounting into the shard's totals."""
    for key in ("input_docs", "input_bytes", "kept_bytes", "html_docs"):
        total[key] += getattr(res, key)
    total["kept_docs"] += len(res.kept)
    total["rejected_docs"] += len(res.rejected)
    for key, counter in (
        ("rejected", res.reasons),
        ("pii_replaced", res.pii),
        ("pii_replaced_rejected", res.pii_rejected),
        ("languages", res.languages),
    ):
        total[key].update(counter)
    rejections.merge_examples(total["examples"], res.examples)


def _new_totals() -> dict[str, Any]:
    totals: dict[str, Any] = dict.fromkeys(
        ("input_docs", "input_bytes", "kept_docs", "kept_bytes", "rejected_docs", "html_docs"), 0
    )
    totals.update(
        rejected=Counter(), pii_replaced=Counter(), pii_replaced_rejected=Counter(), languages=Counter()
    )
    totals["examples"] = {}
    return totals


def _write_report(art: artifacts.StageRun, metrics: dict[str, Any], examples: dict[str, list[str]]) -> None:
    """report.md: per rule the count and two excerpts of rejected documents, PII per type."""
    missing = [r for r, n in metrics["rejected"].items() if not examples.get(r)]
    if missing:  # rules decided at merge time (the perplexity band): read their records back
        rejections.merge_examples(examples, rejections.scan(art.staging / "rejected", missing)[1])
    pii = {"kept documents": metrics["pii_replaced"], "rejected documents": metrics["pii_replaced_rejected"]}
    text = rejections.render("clean report", metrics, metrics["rejected"], examples, pii)
    write_atomic(art.staging / "report.md", text + "\n")


def _merge(cfg: CleanConfig, art: artifacts.StageRun, shards_dir: Path) -> Manifest:
    """Link shard outputs into data/ and rejected/ in shard order, sum the stats, commit."""
    stage = art.staging
    for sub in ("data", "rejected", ".llmctl-prefilter"):
        if (stage / sub).exists():  # a merge that was interrupted: start it over
            shutil.rmtree(stage / sub)
    kept_dir = stage / (".llmctl-prefilter" if cfg.perplexity.enabled else "data")
    kept_dir.mkdir()
    (stage / "rejected").mkdir()
    counts = {"data": 0, "rejected": 0}
    totals: Counter[str] = Counter()
    merged: dict[str, Counter[str]] = {
        "rejected": Counter(),
        "pii_replaced": Counter(),
        "pii_replaced_rejected": Counter(),
        "languages": Counter(),
    }
    examples: dict[str, list[str]] = {}
    seconds = 0.0
    for shard in sorted(shards_dir.iterdir()):
        stats = json.loads((shard / "stats.json").read_text())
        for key in ("input_docs", "input_bytes", "kept_docs", "kept_bytes", "rejected_docs", "html_docs"):
            totals[key] += stats[key]
        for key in merged:
            merged[key].update(stats[key])
        rejections.merge_examples(examples, stats["examples"])
        seconds += stats["seconds"]
        for sub, dest in (("data", kept_dir), ("rejected", stage / "rejected")):
            for f in sorted((shard / sub).glob("part-*.jsonl.zst")):
                os.link(f, dest / f"part-{counts[sub]:05d}.jsonl.zst")
                counts[sub] += 1
    metrics: dict[str, Any] = {
        "input_docs": totals["input_docs"],
        "input_bytes": totals["input_bytes"],
        "kept_docs": totals["kept_docs"],
        "kept_bytes": totals["kept_bytes"],
        "rejected_docs": totals["rejected_docs"],
    }
    rejected = merged["rejected"]
    if cfg.perplexity.enabled:
        from llmctl.clean.perplexity import apply_band

        band = apply_band(
            cfg.perplexity, kept_dir, stage / "data", stage / "rejected", start=counts["rejected"]
        )
        metrics["kept_docs"] -= band["rejected"]
        metrics["rejected_docs"] += band["rejected"]
        metrics["kept_bytes"] = band["kept_bytes"]
        rejected["perplexity"] += band["rejected"]
        metrics["perplexity"] = band["stats"]
        shutil.rmtree(kept_dir)
    if metrics["kept_docs"] + metrics["rejected_docs"] != metrics["input_docs"]:
        raise RuntimeError(f"accounting bug: kept + rejected != input ({metrics})")
    metrics["kept_fraction"] = round(metrics["kept_docs"] / max(1, metrics["input_docs"]), 4)
    metrics["docs_per_s"] = round(metrics["input_docs"] / max(seconds, 1e-9), 1)
    metrics["rejected"] = dict(sorted(rejected.items()))
    metrics["pii_replaced"] = dict(sorted(merged["pii_replaced"].items()))
    metrics["pii_replaced_rejected"] = dict(sorted(merged["pii_replaced_rejected"].items()))
    metrics["languages"] = dict(sorted(merged["languages"].items(), key=lambda kv: (-kv[1], kv[0])))
    metrics["html_docs"] = totals["html_docs"]
    metrics["num_shards"] = cfg.num_shards
    shutil.rmtree(shards_dir)
    _write_report(art, metrics, examples)
    shards.release_merge(stage)
    summary = {
        "input_docs": metrics["input_docs"],
        "kept_docs": metrics["kept_docs"],
        "rejected_docs": metrics["rejected_docs"],
        "kept_fraction": metrics["kept_fraction"],
        "pii_replaced": sum(metrics["pii_replaced"].values()),
        "docs_per_s": metrics["docs_per_s"],
    }
    return art.commit(metrics, summary)
