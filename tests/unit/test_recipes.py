"""Every recipe loads into its stage's config dataclass and starts with the command that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl import config
from llmctl.clean.config import CleanConfig
from llmctl.dedup.config import DedupConfig
from llmctl.dpo.config import DpoConfig
from llmctl.eval.config import EvalConfig
from llmctl.ppo.config import PpoConfig
from llmctl.pretrain.config import PretrainConfig
from llmctl.quantize.config import QuantizeConfig
from llmctl.rm.config import RmConfig
from llmctl.sft.config import SftConfig
from llmctl.tokenize.config import TokenizeConfig

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STAGES = {
    "clean": CleanConfig,
    "dedup": DedupConfig,
    "tokenize": TokenizeConfig,
    "pretrain": PretrainConfig,
    "sft": SftConfig,
    "rm": RmConfig,
    "dpo": DpoConfig,
    "ppo": PpoConfig,
    "quantize": QuantizeConfig,
    "eval": EvalConfig,
}
ALL = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name in STAGES)


def test_every_stage_directory_has_a_config_class():
    dirs = {p.name for p in RECIPES.iterdir() if p.is_dir() and p.name not in ("slurm",)}
    assert dirs <= set(STAGES), f"recipe folders without a config class: {dirs - set(STAGES)}"
    assert ALL, "no recipes found"


@pytest.mark.parametrize("recipe", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads(recipe: Path):
    cfg = config.load(STAGES[recipe.parent.name], recipe)
    assert isinstance(cfg, STAGES[recipe.parent.name])


@pytest.mark.parametrize("recipe", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_starts_with_its_command(recipe: Path):
    first = recipe.read_text().splitlines()[0]
    assert first.startswith(f"# llmctl {recipe.parent.name} "), first
    assert str(recipe.relative_to(RECIPES.parent)) in first


# the shipped eval tasks are package data (src/llmctl/eval/tasks_data/), held to the same rule
TASKS = sorted((RECIPES.parent / "src" / "llmctl" / "eval" / "tasks_data").glob("*.yaml"))
assert TASKS, "no shipped eval tasks found"


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.stem)
def test_eval_task_loads_and_starts_with_its_command(task: Path):
    from llmctl.eval.tasks import load_tasks

    (loaded,) = load_tasks([task.stem], limit=None, num_fewshot=None, seed=1, text_field="text")
    assert loaded.name == task.stem and loaded.items
    assert task.read_text().splitlines()[0] == f"# llmctl eval MODEL --out DIR --tasks {task.stem}"
