"""Every stage has one entry point, `run(cfg) -> Manifest | None`, and its config carries the
invocation (`cfg.run`: inputs, out, force, resume, ...) without recording it."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path

import pytest
import typer

from llmctl import config
from llmctl.artifacts import Manifest
from llmctl.clean.config import CleanConfig
from llmctl.cli import app
from llmctl.config import RunArgs
from llmctl.dedup.config import DedupConfig
from llmctl.errors import ConfigError, UserError
from llmctl.eval.config import EvalConfig
from llmctl.pretrain.config import ExportConfig, PretrainConfig
from llmctl.tokenize.config import TokenizeConfig, parse_source

STAGES = {
    "clean": CleanConfig,
    "dedup": DedupConfig,
    "tokenize": TokenizeConfig,
    "pretrain": PretrainConfig,
    "eval": EvalConfig,
}


@pytest.mark.parametrize("name", [*STAGES, "export"])
def test_each_entry_point_takes_only_its_config(name):
    if name == "export":
        fns = [(importlib.import_module("llmctl.pretrain.stage").export, ExportConfig)]
    else:
        pkg = importlib.import_module(f"llmctl.{name}")
        fns = [(pkg.run, STAGES[name]), (importlib.import_module(f"llmctl.{name}.stage").run, STAGES[name])]
    for fn, cls in fns:
        hints = typing.get_type_hints(fn, {**fn.__globals__, "Manifest": Manifest})
        assert list(hints) == ["cfg", "return"], fn
        assert hints["cfg"] is cls
        assert hints["return"] in (Manifest, Manifest | None)


@pytest.mark.parametrize("cls", [*STAGES.values(), ExportConfig])
def test_the_recorded_config_leaves_the_invocation_out(cls, tmp_path):
    cfg = config.load(cls)
    moved = config.with_run(cfg, inputs=[tmp_path / "a"], out=tmp_path / "o", force=True, resume=True)
    assert moved.run.out == tmp_path / "o" and moved.run.inputs == [tmp_path / "a"]
    assert config.to_dict(moved) == config.to_dict(cfg)  # another --out, --force: the same record
    assert "run" not in config.to_dict(cfg)
    assert not any(k == "run" or k.startswith("run.") for k in config.keys(cls))


def test_run_is_no_recipe_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'run.force'"):
        config.load(CleanConfig, None, ["run.force=true"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("workers: 1\nrun:\n  out: elsewhere\n")
    with pytest.raises(ConfigError, match=r"r.yaml:3: unknown key 'run.out'"):
        config.load(CleanConfig, recipe)


def test_load_records_the_recipe_directory(tmp_path):
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.parent.mkdir()
    recipe.write_text("workers: 1\n")
    cfg = config.load(CleanConfig, recipe, run=RunArgs(inputs=["x"], out="o"))
    assert cfg.run.recipe_dir == recipe.parent and cfg.run.inputs == [Path("x")]
    assert config.with_run(cfg, out=tmp_path).run.recipe_dir == recipe.parent  # kept
    assert config.load(CleanConfig).run == RunArgs()


def test_a_missing_out_names_the_flag():
    with pytest.raises(UserError, match="export needs --out HF_DIR"):
        RunArgs().out_dir("export", "HF_DIR")


@pytest.mark.parametrize("name", STAGES)
def test_each_cli_option_sets_a_real_key(name):
    # the option -> key table lives beside the dataclass; a renamed key or option fails here
    cli_keys = importlib.import_module(f"llmctl.{name}.config").CLI_KEYS
    params = {p.name for p in typer.main.get_command(app).commands[name].params}
    valid = config.keys(STAGES[name])
    for option, key in cli_keys.items():
        assert option in params, option
        assert key in valid, key


def test_slurm_array_defaults(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert config.slurm_array(None, None) == (None, None)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    assert config.slurm_array(None, None) == (4, 2)
    assert config.slurm_array(2, 1) == (2, 1)  # given flags win


def test_parse_source():
    assert parse_source("web=runs/a,runs/b:0.7") == ("web", ["runs/a", "runs/b"], 0.7)
    assert parse_source("code=runs/c") == ("code", ["runs/c"], 1.0)
    for bad, msg in [("web", "expected NAME=PATH"), ("2x=a", "must be a word"), ("w=a:x", "not a number")]:
        with pytest.raises(UserError, match=msg):
            parse_source(bad)
    with pytest.raises(UserError, match="positive"):
        parse_source("w=a:0")
