"""sft's DATA arguments and recipe keys."""

from __future__ import annotations

import pytest

from llmctl import config as cfgmod
from llmctl.errors import ConfigError, UserError
from llmctl.sft.config import SftConfig, SourceConfig, add_data_args, parse_data_args


def test_data_arguments_name_weight_and_plain_paths():
    got = parse_data_args(["chat=data/sft/chitchat.jsonl.zst:0.7", "tasks=rows.parquet", "more/alpaca.jsonl"])
    assert got == {
        "chat": SourceConfig(path="data/sft/chitchat.jsonl.zst", weight=0.7),
        "tasks": SourceConfig(path="rows.parquet"),
        "alpaca": SourceConfig(path="more/alpaca.jsonl"),
    }
    with pytest.raises(UserError, match="given twice"):
        parse_data_args(["a.jsonl", "x/a.jsonl"])


def test_a_recipe_source_keeps_its_template_when_data_names_it(tmp_path):
    cfg = cfgmod.load(
        SftConfig, None, ["data.sources.rows.template=t.yaml", "data.sources.rows.max_examples=5"], {}
    )
    add_data_args(cfg, ["rows=r.jsonl:2", "chat=c.jsonl"])
    assert cfg.data.sources["rows"] == SourceConfig(
        path="r.jsonl", weight=2.0, template="t.yaml", max_examples=5
    )
    assert cfg.data.sources["chat"].path == "c.jsonl"


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("data.overlong", "cut", "data.overlong"),
        ("train.dtype", "int8", "train.dtype"),
        ("lora.r", "0", "lora.r"),
        ("mix.strategy", "random", "mix.strategy"),
        ("stages", "[{name: a}, {name: a}]", "stages"),
    ],
)
def test_bad_recipe_values_name_the_key(key, value, match):
    key = "data.mix.strategy" if key == "mix.strategy" else key
    with pytest.raises(ConfigError, match=match):
        cfgmod.load(SftConfig, None, [f"{key}={value}"], {})
