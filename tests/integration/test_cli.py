"""The CLI as a user meets it: help texts, exit codes, no tracebacks for user mistakes."""

from __future__ import annotations

import subprocess
import sys
import time

import click
import pytest
import typer

from llmctl.cli import app
from tests.conftest import llmctl

COMMANDS = typer.main.get_command(app)


def test_help_is_fast_and_lists_every_command():
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "llmctl.cli", "--help"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        assert r.returncode == 0
    assert best < 1.0, f"llmctl --help took {best:.2f}s"
    for name in COMMANDS.commands:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS.commands))
def test_every_option_is_documented_with_its_default(name):
    cmd = COMMANDS.commands[name]
    ctx = click.Context(cmd, info_name=name)
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.name in ("help",):
            continue
        record = param.get_help_record(ctx)
        assert record is not None, f"{name} {param.opts} has no help"
        assert param.help, f"{name} {param.opts} has no help text"
        if param.default is not None or param.show_default:
            assert "default" in record[1], f"{name} {param.opts}: default not shown: {record[1]!r}"
    r = llmctl(name, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_missing_input_is_exit_2_without_traceback(tmp_path):
    r = llmctl("clean", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_override_suggests_the_key(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "x"}\n')
    r = llmctl("clean", str(src), "--out", str(tmp_path / "o"), "--set", "min_words=3")
    assert r.returncode == 2
    assert "unknown key 'min_words'; did you mean 'quality.min_words'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_value_and_missing_recipe_are_exit_2(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "x"}\n')
    r = llmctl("clean", str(src), "--out", str(tmp_path / "o"), "--workers", "-1")
    assert r.returncode == 2 and "workers" in r.stderr and "Traceback" not in r.stderr
    r = llmctl("clean", str(src), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "none.yaml"))
    assert r.returncode == 2 and "none.yaml" in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = llmctl("clean", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), env={"LLMCTL_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_runtime_failure_is_exit_1(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "x"}\n')
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = llmctl("clean", str(src), "--out", str(blocker / "sub" / "out"))  # parent is a file
    assert r.returncode == 1 and "Traceback" not in r.stderr and "LLMCTL_DEBUG" in r.stderr


def test_inspect_and_lineage_of_a_non_artifact_are_exit_2(tmp_path):
    for cmd in ("inspect", "lineage", "summary"):
        r = llmctl(cmd, str(tmp_path))
        assert r.returncode == 2 and "not a complete llmctl artifact" in r.stderr
