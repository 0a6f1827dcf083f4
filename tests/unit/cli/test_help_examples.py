"""Newcomer check (issue 21): every command's --help shows a runnable example of itself."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from llmctl.cli import app


def commands(cmd=None, path=()):
    """(path, command) for the app, its groups and every command under them."""
    cmd = cmd or typer.main.get_command(app)
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_every_command_help_has_an_example_of_itself():
    found = list(commands())
    assert {"clean", "eval", "lineage", "summary", "export"} <= {p[-1] for p, _ in found if p}
    missing = []
    for path, cmd in found:
        lines = [ln.strip() for ln in (cmd.help or "").splitlines()]
        if not any(ln.startswith(f"Example: llmctl {' '.join(path)}".rstrip()) for ln in lines):
            missing.append(" ".join(("llmctl", *path)))
    assert missing == []
    # and the example reaches the rendered --help (a help text can be cut at \f or by a help= override)
    r = CliRunner().invoke(app, ["lineage", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "Example: llmctl lineage runs/demo/eval --via" in r.output, r.output
