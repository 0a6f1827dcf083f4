"""`llmctl clean`: its options, mapped onto CleanConfig; the work is `llmctl.clean.run`.

llmctl clean data/sample --out runs/demo/clean --config recipes/clean/default.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.clean.config import CLI_KEYS, CleanConfig  # dataclasses only: cheap to import
from llmctl.cli.common import (
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
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


@guard
def clean(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet), directories of .txt files, or artifacts.",
            show_default=False,
        ),
    ] = None,  # type: ignore[assignment]
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    languages: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated languages to keep.",
            show_default=default(CleanConfig, "language.languages"),
        ),
    ] = None,
    workers: WorkersOpt = None,
    text_field: Annotated[
        str | None,
        typer.Option(help="Field holding the text.", show_default=default(CleanConfig, "input.text_field")),
    ] = None,
    id_field: Annotated[
        str | None,
        typer.Option(help="Field holding the id.", show_default=default(CleanConfig, "input.id_field")),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Exit 2 at the first malformed record instead of rejecting it.",
            show_default="no-strict",
        ),
    ] = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Only merge finished shards into the artifact (after a job array)."),
    ] = False,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Quality filtering and privacy reduction: language, Gopher/C4 statistics, repetition,
    keywords, perplexity, HTML extraction, normalization, PII placeholders.

    Example: llmctl clean data/sample --out runs/demo/clean --config recipes/clean/default.yaml"""
    from llmctl.clean import run

    shards = dict(zip(("num_shards", "shard_index"), slurm_array(num_shards, shard_index), strict=True))
    cfg = stage_config(ctx, CleanConfig, CLI_KEYS, shards, inputs=list(inputs or []), merge_only=merge)
    if run(cfg) is not None:  # None: other shards are still running
        print_summary([out])
