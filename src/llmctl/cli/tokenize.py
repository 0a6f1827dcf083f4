"""`llmctl tokenize`: its options, mapped onto TokenizeConfig; the work is `llmctl.tokenize.run`.

llmctl tokenize runs/demo/dedup --out runs/demo/tokenize --config recipes/tokenize/tiny.yaml
llmctl tokenize -i web=runs/web:0.7 -i code=runs/code:0.3 --out runs/tok
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.common import (
    ConfigOpt,
    ForceOpt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    VerifyOpt,
    WorkersOpt,
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.tokenize.config import CLI_KEYS, TokenizeConfig, cli_sources  # cheap to import


@guard
def tokenize(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Artifacts or document files of one source named 'corpus'.", show_default=False),
    ] = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="A named source of the mixture, NAME=PATH[:WEIGHT] (repeatable).",
            show_default="none",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="Reuse this tokenizer (tokenizer.json or a Hugging Face directory).",
            show_default="none: train one",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Tokenizer model to train: bpe, wordpiece, unigram.",
            show_default=default(TokenizeConfig, "tokenizer.model"),
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option(
            help="Vocabulary size to train.", show_default=default(TokenizeConfig, "tokenizer.vocab_size")
        ),
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a tokenizer (byte-level BPE, WordPiece, Unigram) or reuse one, and write megatron-core
    .bin/.idx token data per source plus blend.json for pretrain.

    Example: llmctl tokenize runs/demo/dedup --out runs/demo/tokenize --config recipes/tokenize/tiny.yaml"""
    from llmctl.tokenize import run

    sources = cli_sources(config, set_, source or [], inputs or [])
    cfg = stage_config(ctx, TokenizeConfig, CLI_KEYS, {"sources": sources})
    run(cfg)
    print_summary([out])
