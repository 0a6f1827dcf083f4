"""`llmctl dedup`: its options, mapped onto DedupConfig; the work is `llmctl.dedup.run`.

llmctl dedup runs/demo/clean --out runs/demo/dedup --config recipes/dedup/default.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.common import (
    ConfigOpt,
    ForceOpt,
    NumShardsOpt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    ShardIndexOpt,
    VerifyOpt,
    WorkersOpt,
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.config import slurm_array
from llmctl.dedup.config import CLI_KEYS, DedupConfig  # dataclasses only: cheap to import


@guard
def dedup(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="A clean artifact, or document files/directories in any format clean reads.",
            show_default=False,
        ),
    ] = None,  # type: ignore[assignment]
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            help="Evaluation set (JSONL) to remove contaminated training documents for (repeatable).",
            show_default="none",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Jaccard threshold of near-duplicates.",
            show_default=default(DedupConfig, "minhash.threshold"),
        ),
    ] = None,
    workers: WorkersOpt = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Refuse to start above this estimated peak memory (e.g. 8G).",
            show_default=default(DedupConfig, "max_memory"),
        ),
    ] = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Only run the steps after the signatures (after a job array).", show_default="off"
        ),
    ] = False,
    step: Annotated[
        str,
        typer.Option(
            help="all, or one step of chained SLURM jobs: signatures, buckets (this shard's bands), finish."
        ),
    ] = "all",
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """De-duplication: exact and MinHash near-duplicate documents, repeated boilerplate lines,
    and training documents that overlap evaluation sets (contamination).

    Example: llmctl dedup runs/demo/clean --out runs/demo/dedup --against data/eval/sotu-quotes.jsonl"""
    from llmctl.dedup import run

    shards = dict(zip(("num_shards", "shard_index"), slurm_array(num_shards, shard_index), strict=True))
    cfg = stage_config(
        ctx,
        DedupConfig,
        CLI_KEYS,
        shards,
        inputs=list(inputs or []),
        against=list(against or []),
        merge_only=merge,
        step=step,
    )
    if run(cfg) is not None:  # None: other shards or steps are still to run
        print_summary([out])
