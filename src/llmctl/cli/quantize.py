"""`llmctl quantize`: its options, mapped onto QuantizeConfig; the work is `llmctl.quantize.run`.

llmctl quantize runs/demo/dpo --calibration runs/demo/dedup --out runs/demo/quantize \
    -c recipes/quantize/demo.yaml
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
    SetOpt,
    VerifyOpt,
    default,
    guard,
    print_summary,
    stage_config,
)
from llmctl.quantize.config import CLI_KEYS, QuantizeConfig  # dataclasses only


@guard
def quantize(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="The model to quantize: a Hugging Face causal-LM directory, or an llmctl artifact with hf/ "
            "(pretrain, sft, ppo, dpo).",
            show_default=False,
            metavar="MODEL",
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="gptq (calibrated), rtn (round-to-nearest) or int8 (LLM.int8() via bitsandbytes, "
            "the int8 extra).",
            show_default=default(QuantizeConfig, "method"),
        ),
    ] = None,
    bits: Annotated[
        int | None,
        typer.Option(help="Bits per weight: 4 or 8 (2, 3); int8 takes only 8.", show_default="4; int8: 8"),
    ] = None,
    group_size: Annotated[
        int | None,
        typer.Option(
            help="Input features per scale (-1: per output row); must divide every layer's in_features; "
            "int8 takes only -1.",
            show_default="128; int8: -1",
        ),
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option(
            help="Calibration text: a tokenize or document artifact, JSONL/parquet records {text}, or a .txt "
            "file; a share of its documents is held out for perplexity.",
            show_default=False,
            metavar="DATA",
        ),
    ] = None,
    force: ForceOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Quantize a model with gptqmodel (survey 5.4): GPTQ on calibration text or round-to-nearest, 4 or
    8 bits, into a GPTQ checkpoint (hf/) that gptqmodel and transformers load back; or LLM.int8()
    through bitsandbytes (--method int8, no calibration: the text's held-out split is measured);
    report.md compares perplexity, size and speed before and after, and GPTQ against RTN.

    Example: llmctl quantize runs/demo/dpo --calibration runs/demo/dedup --out runs/demo/quantize
    --config recipes/quantize/demo.yaml"""
    from llmctl.quantize import run

    cfg = stage_config(ctx, QuantizeConfig, CLI_KEYS, {"model": str(model)}, inputs=[model])
    run(cfg)
    print_summary([out])
