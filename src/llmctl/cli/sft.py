"""`llmctl sft`: its options, mapped onto SftConfig; the work is `llmctl.sft.run`.

llmctl sft runs/demo/pretrain chat=data/sft/chitchat.jsonl.zst --out runs/demo/sft -c recipes/sft/tiny.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.common import (
    ConfigOpt,
    ForceOpt,
    NprocOpt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    VerifyOpt,
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.sft.config import CLI_KEYS, SftConfig  # dataclasses only: cheap to import


@guard
def sft(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="Base model: a Hugging Face causal-LM directory, or an llmctl artifact with hf/ "
            "(pretrain, another sft).",
            show_default=False,
            metavar="MODEL",
        ),
    ],
    data: Annotated[
        list[str] | None,
        typer.Argument(
            help="Instruction data: NAME=PATH[:WEIGHT] or PATH (JSONL, JSONL.zst, parquet, a directory or "
            "an llmctl artifact). Chat (messages / ShareGPT conversations), prompt/completion and "
            "alpaca records are recognised; task rows need a template (data.sources.NAME.template).",
            show_default=False,
            metavar="DATA...",
        ),
    ] = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    lora: Annotated[
        bool | None,
        typer.Option(
            "--lora/--no-lora",
            help="Train a LoRA adapter (peft; rank, alpha, targets under lora.* in the recipe); the "
            "artifact has adapter/ and the merged hf/.",
            show_default=default(SftConfig, "lora.enabled"),
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps per stage at most (overrides epochs).", show_default="epochs"),
    ] = None,
    nproc: NprocOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Instruction-tune a causal LM with TRL's SFTTrainer (survey 5.1), the loss on the assistant's
    tokens only; optionally LoRA (5.3). Several sources are mixed (proportional with a cap, weights,
    temperature) and may be trained in stages (data.*, stages in the recipe).

    Example: llmctl sft runs/demo/pretrain chat=data/sft/chitchat.jsonl.zst --out runs/demo/sft
    --config recipes/sft/tiny.yaml --nproc 2"""
    from llmctl.launch import resolve_nproc
    from llmctl.sft import run
    from llmctl.sft.config import add_data_args

    flags = {"model": str(model), "nproc": resolve_nproc(nproc)}
    cfg = stage_config(ctx, SftConfig, CLI_KEYS, flags, inputs=[model])
    add_data_args(cfg, data or [])
    if run(cfg) is not None:  # None: a rank other than 0
        print_summary([out])
