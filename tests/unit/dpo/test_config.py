"""dpo's recipe keys: bad values name their key; the recipe maps onto TRL's DPOConfig with every
TRL default that differs from transformers' set explicitly; the held-out measures' fixed points."""

from __future__ import annotations

import pytest

from llmctl import config as cfgmod
from llmctl.dpo.config import DpoConfig, add_prefs_args
from llmctl.errors import ConfigError, UserError


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.loss=hinge", "train.loss"),
        ("train.beta=0", "train.beta"),
        ("train.sft_weight=-1", "train.sft_weight"),
        ("data.held_out=0", "data.held_out"),
        ("lora.target_modules=[]", "lora.target_modules"),
        ("train.device=tpu", "train.device"),
        ("train.nope=1", "train.nope"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        cfgmod.load(DpoConfig, None, [override], {})


def test_prefs_arguments_are_read_as_rm_reads_them():
    cfg = cfgmod.load(DpoConfig, None, ["data.sources.hh.max_pairs=5"], {})
    add_prefs_args(cfg, ["hh=a.jsonl", "dir/b.jsonl.zst"])
    assert (cfg.data.sources["hh"].path, cfg.data.sources["hh"].max_pairs) == ("a.jsonl", 5)
    assert cfg.data.sources["b"].path == "dir/b.jsonl.zst"
    with pytest.raises(UserError, match="given twice"):
        add_prefs_args(cfg, ["x=1.jsonl", "x=2.jsonl"])


@pytest.mark.parametrize(
    ("overrides", "losses", "weights"),
    [
        ([], ["sigmoid"], [1.0]),
        (["train.loss=ipo"], ["ipo"], [1.0]),
        (["train.sft_weight=0.25"], ["sigmoid", "sft"], [1.0, 0.25]),
    ],
)
def test_the_recipe_maps_onto_trl_dpoconfig(tmp_path, overrides, losses, weights):
    import torch

    from llmctl.dpo.train import dpo_args

    cfg = cfgmod.load(DpoConfig, None, ["train.beta=0.3", "reference.precompute=true", *overrides], {})
    args = dpo_args(cfg, tmp_path, "cpu", torch.float32)
    assert (args.loss_type, args.loss_weights, args.beta) == (losses, weights, 0.3)
    assert args.precompute_ref_log_probs is True and args.max_length == cfg.data.max_length
    # TRL turns both on by default; llmctl takes them from the recipe
    assert args.bf16 is False and args.gradient_checkpointing is False


def test_identical_policy_and_reference_measure_chance_and_zero_kl():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmctl.dpo.measure import measure

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1)
    ).eval()  # fmt: skip
    examples = [
        {"chosen_ids": [1, 2, 3, 4], "chosen_start": 2, "rejected_ids": [1, 2, 5, 6, 7], "rejected_start": 2},
        {"chosen_ids": [3, 3, 8], "chosen_start": 2, "rejected_ids": [3, 3, 9], "rejected_start": 2},
    ]
    m = measure(model, lambda i, a: model(input_ids=i, attention_mask=a).logits, examples, beta=0.1,
                pad_id=0, batch_size=1)  # fmt: skip
    assert (m["accuracy"], m["margin"], m["kl_per_token"], m["pairs"]) == (0.5, 0.0, 0.0, 2)
    other = LlamaForCausalLM(model.config).eval()
    m2 = measure(model, lambda i, a: other(input_ids=i, attention_mask=a).logits, examples, beta=0.1,
                 pad_id=0, batch_size=2)  # fmt: skip
    assert m2["kl_per_token"] > 0 and m2["accuracy"] in (0.0, 0.5, 1.0)
