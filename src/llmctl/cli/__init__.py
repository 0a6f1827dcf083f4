"""The `llmctl` command line: one thin command per stage, plus inspect/lineage/summary.

    llmctl --help
    llmctl clean data/sample --out runs/demo/clean --config recipes/clean/default.yaml

Each stage's command lives in its own module (`cli/clean.py`, ...): it declares the options,
turns them into the stage's config (`common.stage_config`) and calls the stage's `run(cfg)`.
Stage packages are imported inside the commands, so `llmctl --help` stays fast. Exit codes:
0 success, 2 user error, 1 runtime failure, 3 stopped early on purpose, 130 interrupted.
"""

from __future__ import annotations

from typing import Annotated

import typer

from llmctl import __version__
from llmctl.cli import artifacts, clean, dedup, dpo, eval, plan, ppo, pretrain, quantize, rm, sft, tokenize

app = typer.Typer(
    name="llmctl",
    help="From raw text to an aligned, quantized, evaluated language model, one stage at a time.\n\n"
    "Each stage reads artifacts from disk and writes one artifact directory (manifest.json last).\n\n"
    "Example: llmctl clean data/sample --out runs/demo/clean   (every stage in a row: make demo)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """From raw text to an aligned, quantized, evaluated language model, one stage at a time."""


# in pipeline order: `llmctl --help` lists them so
app.command("clean")(clean.clean)
app.command("dedup")(dedup.dedup)
app.command("tokenize")(tokenize.tokenize)
app.command("pretrain")(pretrain.pretrain)
app.command("sft")(sft.sft)
app.command("rm")(rm.rm)
app.command("score")(rm.score)
app.command("ppo")(ppo.ppo)
app.command("bon")(ppo.bon)
app.command("dpo")(dpo.dpo)
app.command("quantize")(quantize.quantize)
app.command("eval")(eval.eval_)
app.command("export")(pretrain.export)
app.command("inspect")(artifacts.inspect)
app.command("lineage")(artifacts.lineage)
app.command("summary")(artifacts.summary)
app.add_typer(plan.app, name="plan")


def main() -> None:
    app()
