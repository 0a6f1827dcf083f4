"""`llmctl inspect`, `lineage`, `summary`: read artifacts, write nothing.

llmctl inspect runs/demo/clean --reasons
llmctl lineage runs/demo/pretrain
llmctl summary runs/demo/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from llmctl.cli.common import guard, print_summary


@guard
def inspect(
    directory: Annotated[Path, typer.Argument(help="An artifact directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest JSON.")] = False,
    reasons: Annotated[
        bool,
        typer.Option(
            "--reasons",
            help="Explain the rejections instead: per rule the count and two excerpts of rejected "
            "documents, and the personal data replaced (clean's report.md; built from rejected/ for "
            "other data stages).",
        ),
    ] = False,
) -> None:
    """Print an artifact's manifest: stage, config, inputs, outputs, metrics, versions.

    Example: llmctl inspect runs/demo/clean --reasons"""
    from llmctl.artifacts import Manifest
    from llmctl.report import print_manifest

    m = Manifest.read(directory)
    if reasons:
        from llmctl.rejections import for_artifact

        sys.stdout.write(for_artifact(directory))
    elif as_json:
        sys.stdout.write(m.to_json())
    else:
        print_manifest(directory, m)


@guard
def lineage(
    directory: Annotated[Path, typer.Argument(help="An artifact directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Walk an artifact's inputs back to the raw data; flag inputs changed since they were used.

    Exits 1 when an input changed or disappeared."""
    from llmctl.lineage import lineage as walk
    from llmctl.lineage import problems
    from llmctl.report import lineage_json, print_lineage

    root = walk(directory)
    if as_json:
        sys.stdout.write(json.dumps(lineage_json(root), indent=2) + "\n")
    else:
        print_lineage(root)
    if problems(root):
        raise typer.Exit(1)


@guard
def summary(
    directories: Annotated[list[Path], typer.Argument(help="Artifact directories.", show_default=False)],
) -> None:
    """One table row per artifact: stage, duration and key metrics."""
    print_summary(directories)
