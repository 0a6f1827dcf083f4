"""`llmctl inspect`, `lineage`, `summary`: read artifacts, write nothing.

llmctl inspect runs/demo/clean --reasons
llmctl lineage runs/demo/pretrain
llmctl lineage runs/demo/eval --via runs/demo/quantize
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
    via: Annotated[
        list[Path] | None,
        typer.Option(
            "--via",
            help="Follow only this input of the artifact (repeatable), e.g. the quantized model among "
            "eval's models; the other inputs are counted, not drawn. Exit 2 when it is not an input.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Walk an artifact's inputs back to the raw data; flag inputs changed since they were used.

    Exits 1 when an input changed or disappeared (also one that --via leaves out).

    Example: llmctl lineage runs/demo/eval --via runs/demo/quantize"""
    from llmctl.console import warn
    from llmctl.lineage import lineage as walk
    from llmctl.lineage import only_via, problems
    from llmctl.report import lineage_json, print_lineage

    root = walk(directory)
    shown = only_via(root, via) if via else root
    if as_json:
        sys.stdout.write(json.dumps(lineage_json(shown), indent=2) + "\n")
    else:
        print_lineage(shown)
    drawn = {id(n) for n in problems(shown)}
    for n in problems(root):
        if id(n) not in drawn:  # a changed input --via leaves out still fails the check, so say which
            warn(f"{n.path}: {n.status} ({n.detail}), an input --via leaves out")
    if problems(root):
        raise typer.Exit(1)


@guard
def summary(
    directories: Annotated[list[Path], typer.Argument(help="Artifact directories.", show_default=False)],
) -> None:
    """One table row per artifact: stage, duration and key metrics.

    Example: llmctl summary runs/demo/clean runs/demo/dedup runs/demo/pretrain"""
    print_summary(directories)
