"""Every shipped sft recipe loads, and the 7B FSDP recipe's trainer arguments are ones transformers
accepts (it cannot run here: transformers shards with FSDP on GPUs only)."""

from __future__ import annotations

import pytest

from llmctl import config as cfgmod
from llmctl.sft.config import SftConfig, StageConfig
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes" / "sft").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_every_sft_recipe_loads(recipe):
    cfg = cfgmod.load(SftConfig, recipe, [], {})
    assert cfg.train.lr > 0 and cfg.data.max_length >= 16


def test_the_7b_recipe_builds_fsdp_trainer_arguments(tmp_path):
    import torch

    from llmctl.sft.train import _args

    cfg = cfgmod.load(SftConfig, REPO / "recipes" / "sft" / "llama-7b-fsdp.yaml", [], {})
    assert cfg.train.fsdp and cfg.train.fsdp_config["reshard_after_forward"] is True
    # as on a GPU rank, without bf16 (this machine has no bf16-capable accelerator to validate it)
    args = _args(cfg, tmp_path, StageConfig(), 1000, "cuda", torch.float32)
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert args.fsdp_config["version"] == 2 and args.fsdp_config["activation_checkpointing"] is True
    assert args.fsdp  # transformers turned fsdp=True into its sharding options
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)
    assert args.max_length == 4096 and args.packing


def test_fsdp_on_cpu_is_exit_2_before_anything_loads(tmp_path):
    from llmctl.errors import UserError
    from llmctl.sft import stage
    from llmctl.sft.config import add_data_args
    from tests.fixtures.models import tiny_chat_llama

    base = tiny_chat_llama(tmp_path / "base")
    cfg = cfgmod.load(SftConfig, None, ["train.fsdp=true", "train.device=cpu"], {"model": str(base)})
    cfg = cfgmod.with_run(cfg, out=tmp_path / "out")
    add_data_args(cfg, [str(tmp_path / "chat.jsonl")])
    with pytest.raises(UserError, match="train.fsdp: .*GPUs only"):
        stage.run(cfg)
    assert not (tmp_path / "out").exists()
