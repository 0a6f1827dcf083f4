"""`llmctl rm` and `llmctl score`: their options, mapped onto RmConfig / ScoreConfig; the work is
`llmctl.rm.run` / `llmctl.rm.run_score`.

llmctl rm runs/demo/sft prefs=data/rm/mc-pairs.jsonl.zst --out runs/demo/rm -c recipes/rm/tiny.yaml
llmctl score runs/demo/rm responses.jsonl --out runs/demo/scored
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.common import (
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
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
from llmctl.rm.config import CLI_KEYS, SCORE_CLI_KEYS, RmConfig, ScoreConfig  # dataclasses only


@guard
def rm(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="Base model: a Hugging Face causal-LM directory, or an llmctl artifact with hf/ "
            "(pretrain, sft). It gets a new 1-output score head.",
            show_default=False,
            metavar="MODEL",
        ),
    ],
    prefs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Preference data: NAME=PATH or PATH (JSONL, JSONL.zst, parquet or a directory) of pairs "
            "{prompt, chosen, rejected, margin?}, rankings {prompt, responses, ranking} (best first) or "
            "ratings {prompt, response, score}; strings or message lists.",
            show_default=False,
            metavar="PREFS...",
        ),
    ] = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    lora: Annotated[
        bool | None,
        typer.Option(
            "--lora/--no-lora",
            help="Train a LoRA adapter and the score head (peft; lora.* in the recipe); the artifact has "
            "adapter/ and the merged hf/.",
            show_default=default(RmConfig, "lora.enabled"),
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps at most (overrides train.epochs).", show_default="epochs"),
    ] = None,
    criterion: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PREFS (repeatable) instead of PREFS: one reward model per criterion (e.g. helpful, "
            "harmless) under DIR/criteria/NAME, and a combined scorer weighting them (criteria.NAME.weight).",
            show_default="none",
        ),
    ] = None,
    nproc: NprocOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a reward model from human preferences with TRL's RewardTrainer (survey 5.2.2-5.2.3):
    the pairwise ranking loss (with margins when the data has them), optional reward centering and
    an optional LM loss on the chosen responses (train.* in the recipe); optionally LoRA.

    Example: llmctl rm runs/demo/sft prefs=data/rm/mc-pairs.jsonl.zst --out runs/demo/rm
    --config recipes/rm/tiny.yaml"""
    from llmctl.launch import resolve_nproc
    from llmctl.rm import run
    from llmctl.rm.config import add_criterion_args, add_prefs_args

    flags = {"model": str(model), "nproc": resolve_nproc(nproc)}
    cfg = stage_config(ctx, RmConfig, CLI_KEYS, flags, inputs=[model])
    add_prefs_args(cfg, prefs or [])
    add_criterion_args(cfg, criterion or [])
    if run(cfg) is not None:  # None: a rank other than 0
        print_summary([out])


@guard
def score(
    ctx: typer.Context,
    rm_dir: Annotated[
        Path,
        typer.Argument(help="A reward-model artifact (llmctl rm).", show_default=False, metavar="RM_DIR"),
    ],
    data: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL (or .zst, parquet, a directory) of {id?, prompt, response} or chats {messages}.",
            show_default=False,
            metavar="DATA...",
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Sequences per forward pass.", show_default="16")
    ] = None,
    normalise: Annotated[
        bool | None,
        typer.Option(
            "--normalise/--no-normalise",
            help="Also write score_norm, whitened with the training set's reward mean and std.",
            show_default="off",
        ),
    ] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score every row of DATA with a reward model; each row is written back with `score`.

    Example: llmctl score runs/demo/rm responses.jsonl --out runs/demo/scored"""
    from llmctl.rm import run_score

    cfg = stage_config(ctx, ScoreConfig, SCORE_CLI_KEYS, {"model": str(rm_dir)}, inputs=list(data))
    run_score(cfg)
    print_summary([out])
