"""`llmctl ppo` and `llmctl bon`: their options, mapped onto PpoConfig / BonConfig; the work is
`llmctl.ppo.run` / `llmctl.ppo.run_bon`.

llmctl ppo runs/demo/sft --reward-model runs/demo/rm --prompts p.jsonl --out runs/demo/ppo \
    -c recipes/ppo/tiny.yaml
llmctl bon runs/demo/sft --reward-model runs/demo/rm --prompts p.jsonl --n 4 --out runs/demo/bon --sft
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
from llmctl.ppo.config import BON_CLI_KEYS, CLI_KEYS, BonConfig, PpoConfig  # dataclasses only

PolicyArg = Annotated[
    Path,
    typer.Argument(
        help="The policy: an sft artifact, or a Hugging Face causal-LM directory / artifact with hf/.",
        show_default=False,
        metavar="POLICY",
    ),
]
RewardOpt = Annotated[
    Path | None,
    typer.Option(
        "--reward-model",
        help="An llmctl rm artifact (hf/ + reward.json), or a combined one (rm --criterion ...: the "
        "weighted sum of the criteria's normalised rewards).",
        show_default=False,
    ),
]
PromptsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--prompts",
        help="JSONL of {prompt} (string or messages) or chats {messages} (repeatable).",
        show_default=False,
    ),
]


@guard
def ppo(
    ctx: typer.Context,
    model: PolicyArg,
    reward_model: RewardOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    lora: Annotated[
        bool | None,
        typer.Option(
            "--lora/--no-lora",
            help="Train a LoRA adapter on the policy (the reference is the adapter-disabled policy); the "
            "artifact has adapter/ and the merged hf/.",
            show_default=default(PpoConfig, "lora.enabled"),
        ),
    ] = None,
    nproc: NprocOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """RLHF with PPO as InstructGPT did it (survey 5.2.3), on TRL 1.12's PPOTrainer: per-token KL
    penalty against the initial policy, GAE, clipped surrogate and value losses, a value model
    initialised from the reward model (ppo.* in the recipe).

    Example: llmctl ppo runs/demo/sft --reward-model runs/demo/rm --prompts p.jsonl --out runs/demo/ppo
    --config recipes/ppo/tiny.yaml"""
    from llmctl.launch import resolve_nproc
    from llmctl.ppo import run

    extra = {
        "model": str(model),
        "nproc": resolve_nproc(nproc),
        **({"prompts": [str(p) for p in prompts]} if prompts else {}),
    }
    cfg = stage_config(ctx, PpoConfig, CLI_KEYS, extra, inputs=[model])
    if run(cfg) is not None:  # None: a rank other than 0
        print_summary([out])


@guard
def bon(
    ctx: typer.Context,
    model: PolicyArg,
    reward_model: RewardOpt = None,
    prompts: PromptsOpt = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Responses sampled per prompt.", show_default="4")
    ] = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    sft: Annotated[
        bool | None,
        typer.Option(
            "--sft/--no-sft",
            help="Then fine-tune the policy on the winners through llmctl sft (rejection-sampling "
            "fine-tuning); the tuned model is DIR/sft.",
            show_default="off",
        ),
    ] = None,
    force: ForceOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Best-of-N: sample N responses per prompt, score them with the reward model, keep the best
    (all N recorded with their scores); writes preference pairs (best vs worst) and sft chats of
    the winners.

    Example: llmctl bon runs/demo/sft --reward-model runs/demo/rm --prompts p.jsonl --n 4 --out runs/bon"""
    from llmctl.ppo import run_bon

    extra = {"model": str(model), **({"prompts": [str(p) for p in prompts]} if prompts else {})}
    cfg = stage_config(ctx, BonConfig, BON_CLI_KEYS, extra, inputs=[model])
    run_bon(cfg)
    print_summary([out])
