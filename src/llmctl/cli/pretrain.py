"""`llmctl pretrain`: its options, mapped onto PretrainConfig; the work is `llmctl.pretrain.run`.

llmctl pretrain runs/demo/tokenize --out runs/demo/pretrain --config recipes/pretrain/tiny.yaml
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
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.pretrain.config import CLI_KEYS, PretrainConfig  # dataclasses only: cheap to import


@guard
def pretrain(
    ctx: typer.Context,
    tokenized: Annotated[
        Path, typer.Argument(help="A tokenize artifact (blend.json, data/, tokenizer/).", show_default=False)
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Local processes, started through torchrun; a multiple of TP x PP.",
            show_default=default(PretrainConfig, "nproc"),
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps.", show_default=default(PretrainConfig, "train.steps")),
    ] = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Pre-train a LLaMA-style GPT with megatron-core (tensor, pipeline and data parallelism), then
    export hf/ for transformers. Exit code 3: stopped early on purpose; --resume continues.

    Multi-node: run it under torchrun yourself (`srun torchrun --nnodes N ... -m llmctl pretrain ...`,
    see recipes/slurm/pretrain.sbatch); each process is then one rank and --nproc is ignored.

    Example: llmctl pretrain runs/demo/tokenize --out runs/demo/pretrain --config recipes/pretrain/tiny.yaml
    """
    from llmctl.pretrain import resolve_nproc, run

    cfg = stage_config(ctx, PretrainConfig, CLI_KEYS, {"nproc": resolve_nproc(nproc)}, inputs=[tokenized])
    if run(cfg) is not None:  # None: a rank other than 0
        print_summary([out])


@guard
def export(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A pretrain checkpoint: PRETRAIN_DIR/checkpoints/iter_NNNNNNN.", show_default=False
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    force: ForceOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Export a megatron checkpoint (any TP/PP layout) as a Hugging Face LlamaForCausalLM directory,
    checked by logits parity against megatron.

    Example: llmctl export runs/demo/pretrain/checkpoints/iter_0000100 --out runs/demo/pretrain-hf"""
    from llmctl.pretrain.config import ExportConfig
    from llmctl.pretrain.stage import export as run_export

    run_export(stage_config(ctx, ExportConfig, {}, inputs=[checkpoint]))
    print_summary([out])
