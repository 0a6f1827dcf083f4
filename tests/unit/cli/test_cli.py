"""The typer app's options, checked in process (the real CLI runs in tests/integration/test_cli.py)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from llmctl.cli import app


def test_tokenize_has_no_train_flag(tmp_path):
    # A tokenizer is trained unless --tokenizer names one; a --train flag that only checked
    # for that conflict promised a choice that did not exist, so it is gone.
    cmd = typer.main.get_command(app).commands["tokenize"]
    assert not any("--train" in p.opts for p in cmd.params)
    r = CliRunner().invoke(app, ["tokenize", str(tmp_path), "--out", str(tmp_path / "o"), "--train"])
    assert r.exit_code == 2
    assert "No such option" in r.output and "--train" in r.output
    assert not (tmp_path / "o").exists()
