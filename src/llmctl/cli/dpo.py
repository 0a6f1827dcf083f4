"""`llmctl dpo`: its options, mapped onto DpoConfig; the work is `llmctl.dpo.run`.

llmctl dpo runs/demo/sft mc=data/rm/mc-pairs.jsonl.zst --out runs/demo/dpo -c recipes/dpo/demo.yaml
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
from llmctl.dpo.config import CLI_KEYS, DpoConfig  # dataclasses only


@guard
def dpo(
    ctx: typer.Context,
    policy: Annotated[
        Path,
        typer.Argument(
            help="The policy to align: a Hugging Face causal-LM directory, or an llmctl artifact with hf/ "
            "(sft). It is also the reference unless reference.model names another.",
            show_default=False,
            metavar="POLICY",
        ),
    ],
    prefs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Preference data, as llmctl rm reads it: NAME=PATH or PATH (JSONL, JSONL.zst, parquet or a "
            "directory) of pairs {prompt, chosen, rejected}, rankings {prompt, responses, ranking} (best "
            "first) or ratings {prompt, response, score}; strings or message lists.",
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
            help="Train a LoRA adapter (peft; lora.* in the recipe); the reference is then the "
            "adapter-disabled policy; the artifact has adapter/ and the merged hf/.",
            show_default=default(DpoConfig, "lora.enabled"),
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps at most (overrides train.epochs).", show_default="epochs"),
    ] = None,
    nproc: NprocOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Align a policy on preference pairs with TRL's DPOTrainer (survey 5.2.4: no reward model, no RL
    loop): the sigmoid (DPO) or IPO loss, beta, an optional supervised term on the chosen responses
    (train.* in the recipe), the reference (reference.*); optionally LoRA.

    Example: llmctl dpo runs/demo/sft mc=data/rm/mc-pairs.jsonl.zst --out runs/demo/dpo
    --config recipes/dpo/demo.yaml"""
    from llmctl.dpo import run
    from llmctl.dpo.config import add_prefs_args
    from llmctl.launch import resolve_nproc

    flags = {"model": str(policy), "nproc": resolve_nproc(nproc)}
    cfg = stage_config(ctx, DpoConfig, CLI_KEYS, flags, inputs=[policy])
    add_prefs_args(cfg, prefs or [])
    if run(cfg) is not None:  # None: a rank other than 0
        print_summary([out])
