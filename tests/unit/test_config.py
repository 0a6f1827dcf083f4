"""Config resolution: recipe < --set < flags, type checks, unknown keys with suggestions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmctl import config
from llmctl.errors import ConfigError, UserError


@dataclass
class Optim:
    lr: float = 1e-3
    """learning rate"""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])


@dataclass
class Toy:
    name: str = "toy"
    steps: int = 10
    use_bias: bool = False
    mode: str | None = None
    optim: Optim = field(default_factory=Optim)
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        config.check(self.steps > 0, "steps", "must be > 0")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_precedence_defaults_recipe_set_flags(tmp_path):
    recipe = write(tmp_path, "steps: 20\noptim:\n  lr: 0.01\n")
    cfg = config.load(Toy, recipe, ["optim.lr=0.5", "steps=30"], {"steps": 40, "name": None})
    assert cfg.optim.lr == 0.5  # --set beats the recipe
    assert cfg.steps == 40  # an explicit flag beats --set
    assert cfg.name == "toy"  # a flag left unset (None) changes nothing
    assert cfg.optim.betas == [0.9, 0.95]


def test_set_parses_yaml_values():
    cfg = config.load(Toy, None, ["use_bias=true", "optim.betas=[0.8, 0.99]", "weights.web=0.7", "mode=fast"])
    assert cfg.use_bias is True
    assert cfg.optim.betas == [0.8, 0.99]
    assert cfg.weights == {"web": 0.7}
    assert cfg.mode == "fast"


def test_unknown_key_suggests_the_dotted_name():
    with pytest.raises(ConfigError, match=r"unknown key 'lr'; did you mean 'optim.lr'\?"):
        config.load(Toy, None, ["lr=0.1"])
    with pytest.raises(ConfigError, match=r"did you mean 'steps'"):
        config.load(Toy, None, ["stepz=3"])


def test_unknown_recipe_key_names_file_and_line(tmp_path):
    recipe = write(tmp_path, "name: x\n\noptim:\n  lr: 0.1\n  beta: [1, 2]\n")
    with pytest.raises(ConfigError) as e:
        config.load(Toy, recipe)
    assert f"{recipe}:5:" in str(e.value)
    assert "did you mean 'optim.betas'" in str(e.value)


def test_wrong_type_names_key_and_line(tmp_path):
    recipe = write(tmp_path, "steps: many\n")
    with pytest.raises(ConfigError, match=r"r.yaml:1: 'steps' must be an integer, got 'many'"):
        config.load(Toy, recipe)
    with pytest.raises(ConfigError, match=r"'use_bias' must be true or false"):
        config.load(Toy, None, ["use_bias=3"])


def test_post_init_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"invalid value for 'steps': must be > 0"):
        config.load(Toy, None, ["steps=0"])


def test_bad_yaml_and_bad_override_are_user_errors(tmp_path):
    recipe = write(tmp_path, "steps: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(Toy, recipe)
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        config.load(Toy, None, ["steps"])


def test_to_dict_round_trips():
    cfg = config.load(Toy, None, ["optim.lr=0.25"])
    d = config.to_dict(cfg)
    assert d["optim"]["lr"] == 0.25
    assert config.load(Toy, None, [f"optim.lr={d['optim']['lr']}"]) == cfg
