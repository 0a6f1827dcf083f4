"""rm's PREFS/--criterion arguments and recipe keys."""

from __future__ import annotations

import pytest

from llmctl import config as cfgmod
from llmctl.errors import ConfigError, UserError
from llmctl.rm.config import CriterionConfig, RmConfig, add_criterion_args, add_prefs_args


def test_criterion_arguments_keep_the_recipe_weight():
    cfg = cfgmod.load(RmConfig, None, ["criteria.helpful.weight=2"], {})
    add_criterion_args(cfg, ["helpful=h.jsonl", "harmless=x/y.jsonl"])
    assert cfg.criteria == {
        "helpful": CriterionConfig(path="h.jsonl", weight=2.0),
        "harmless": CriterionConfig(path="x/y.jsonl", weight=1.0),
    }
    with pytest.raises(UserError, match="expected NAME=PATH"):
        add_criterion_args(cfg, ["h.jsonl"])
    with pytest.raises(UserError, match="given twice"):
        add_criterion_args(cfg, ["a=1.jsonl", "a=2.jsonl"])


def test_a_recipe_source_keeps_its_cap_when_prefs_names_it():
    cfg = cfgmod.load(RmConfig, None, ["data.sources.hh.max_pairs=5"], {})
    add_prefs_args(cfg, ["hh=a.jsonl"])
    assert (cfg.data.sources["hh"].path, cfg.data.sources["hh"].max_pairs) == ("a.jsonl", 5)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.min_score_gap=0", "data.min_score_gap"),
        ("data.held_out=0", "data.held_out"),
        ("train.lm_weight=-1", "train.lm_weight"),
        ("lora.target_modules=[]", "lora.target_modules"),
        ("train.device=tpu", "train.device"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        cfgmod.load(RmConfig, None, [override], {})


@pytest.mark.parametrize("overrides", [[], ["train.gradient_checkpointing=true"]])
def test_the_recipe_decides_recompute_and_bf16_not_trls_defaults(tmp_path, overrides):
    """TRL's RewardConfig turns gradient checkpointing and bf16 on by default; an rm run without
    the key once recomputed every activation (+58% train time in bench/rm_bench.py)."""
    import torch

    from llmctl.rm.train import _args

    cfg = cfgmod.load(RmConfig, None, overrides, {})
    args = _args(cfg, tmp_path, "cpu", torch.float32)
    assert args.gradient_checkpointing is bool(overrides) and args.bf16 is False
