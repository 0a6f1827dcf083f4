"""`llmctl eval`: its options, mapped onto EvalConfig; the work is `llmctl.eval.run`.

llmctl eval runs/demo/pretrain --tasks capitals,arith-cot --out runs/demo/eval
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
    OutOpt,
    QuietOpt,
    SetOpt,
    VerifyOpt,
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.eval.config import CLI_KEYS, EvalConfig  # dataclasses only: cheap to import


def gen_default(key: str) -> str:
    return default(EvalConfig, f"generation.{key}")


@guard
def eval_(
    ctx: typer.Context,
    models: Annotated[
        list[Path],
        typer.Argument(
            help="Hugging Face causal-LM directories or llmctl artifacts holding one (pretrain's hf/, "
            "export). Several give a side-by-side comparison.",
            show_default=False,
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tasks: shipped task names (llmctl/eval/tasks_data/), task YAML files, or "
            "perplexity:PATH (a document artifact, JSONL or text).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="Score only the first N items of each task.", show_default="all")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Sequences per forward pass.", show_default=default(EvalConfig, "batch_size")),
    ] = None,
    num_fewshot: Annotated[
        int | None,
        typer.Option(help="In-context demonstrations per item (seeded).", show_default="each task's own"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for demonstrations and sampling.", show_default=default(EvalConfig, "seed")),
    ] = None,
    decoding: Annotated[
        str | None,
        typer.Option(help="Generation: greedy, beam or sample.", show_default=gen_default("strategy")),
    ] = None,
    num_beams: Annotated[
        int | None, typer.Option(help="Beams for --decoding beam.", show_default=gen_default("num_beams"))
    ] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(
            help="Beam search length penalty (> 1 favours longer).",
            show_default=gen_default("length_penalty"),
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature.", show_default=gen_default("temperature"))
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Top-k sampling (0 = off).", show_default=gen_default("top_k"))
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Nucleus sampling mass (1 = off).", show_default=gen_default("top_p")),
    ] = None,
    repetition_penalty: Annotated[
        float | None,
        typer.Option(help="Repetition penalty (1 = off).", show_default=gen_default("repetition_penalty")),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens generated at most.", show_default=gen_default("max_new_tokens")),
    ] = None,
    stop: Annotated[
        list[str] | None,
        typer.Option(help="Stop string (repeatable); replaces the default.", show_default=r"\n\n"),
    ] = None,
    judge: Annotated[
        list[Path] | None,
        typer.Option(
            help="A reward model (llmctl rm artifact, or its combined scorer) that judges generation "
            "answers: mean reward, and pairwise win rates with a bootstrap CI across models (repeatable).",
            show_default="none",
        ),
    ] = None,
    contamination_index: Annotated[
        Path | None,
        typer.Option(
            help="An artifact whose n-gram index marks contaminated items (instead of the lineage's).",
            show_default="every index in the model's lineage: dedup, sft, rm, dpo, ppo",
        ),
    ] = None,
    chat: Annotated[
        bool | None,
        typer.Option(
            "--chat/--no-chat",
            help="Through each model's chat template: the prompt as the user turn, demonstrations as "
            "earlier turns, the answer as the assistant's (lm-eval's --apply_chat_template "
            "--fewshot_as_multiturn). Exit 2 for a model without a template.",
            show_default="each task's own chat: setting (off)",
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(help="System prompt under --chat.", show_default="the task's own, else none"),
    ] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a killed run: the (model, task) pairs it finished are not scored again.",
            show_default="off",
        ),
    ] = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate models: perplexity (token and bits per byte), multiple choice by log-likelihood
    (acc, acc_norm; mc1, mc2 for items with several true and false answers; zero- or k-shot),
    generation (exact match, contains, regex) with greedy, beam or sampled decoding, judged by
    reward models with --judge. Scores on all, clean and contaminated items (every n-gram index in
    the model's lineage); results.json, report.md, charts/.

    Example: llmctl eval runs/demo/sft runs/demo/dpo --tasks sotu-quotes --judge runs/demo/rm --out runs/c"""
    from llmctl.eval import run

    judges = [str(j) for j in judge] if judge else None  # recorded as strings, like every path key
    cfg = stage_config(
        ctx, EvalConfig, CLI_KEYS, {"tasks": tasks or None, "judge": judges}, inputs=list(models)
    )
    run(cfg)
    print_summary([out])
