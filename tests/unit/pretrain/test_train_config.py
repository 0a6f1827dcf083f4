"""The recipe -> TransformerConfig mapping: CUDA fusions and CPU initialisation on CPU only; what a
CPU run drops is said."""

from __future__ import annotations

import pytest
import torch

from llmctl import config
from llmctl.megatron import model
from llmctl.pretrain import PretrainConfig, train


def _cfg(*overrides: str) -> PretrainConfig:
    return config.load(PretrainConfig, None, list(overrides))


def test_cpu_turns_every_fusion_off_and_initialises_on_the_cpu():
    tc = model.transformer_config(_cfg(), tensor=1, pipeline=1, bf16=False, sequence_parallel=False, cpu=True)
    assert tc.use_cpu_initialization
    assert not any(getattr(tc, name) for name in model.FUSIONS)
    assert tc.params_dtype == torch.float32


def test_gpu_keeps_the_fusions_that_can_run_and_initialises_on_the_device(monkeypatch):
    tc = model.transformer_config(_cfg(), tensor=1, pipeline=1, bf16=True, sequence_parallel=False, cpu=False)
    assert not tc.use_cpu_initialization  # each rank initialises its shard where it lives
    assert tc.bias_activation_fusion and tc.bias_dropout_fusion  # torch.jit kernels: always there
    assert tc.params_dtype == torch.bfloat16 and tc.bf16
    # kernels from extensions follow what imports: none of them here ...
    assert not tc.gradient_accumulation_fusion and not tc.masked_softmax_fusion and not tc.apply_rope_fusion
    # ... and each one is on where its extension is installed
    monkeypatch.setattr(model, "_importable", lambda m: m != "transformer_engine")
    on = model.fusions(cpu=False)
    assert on["gradient_accumulation_fusion"] and on["masked_softmax_fusion"]
    assert not on["apply_rope_fusion"] and not on["persist_layer_norm"]  # no TE; RMSNorm, not LayerNorm
    assert set(on) == set(model.FUSIONS)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], []),
        (["train.bf16=false"], []),
        (["train.bf16=true"], ["train.bf16=true is ignored on CPU"]),
        (
            ["train.bf16=true", "parallel.sequence_parallel=true"],
            ["train.bf16=true is ignored on CPU", "parallel.sequence_parallel=true is ignored on CPU"],
        ),
    ],
)
def test_cpu_warnings_name_what_is_dropped(overrides, expected):
    got = train.cpu_warnings(_cfg(*overrides))
    assert len(got) == len(expected)
    assert all(g.startswith(e) for g, e in zip(got, expected, strict=True))


def test_vocab_padding_follows_the_training_tensor_parallel_size():
    assert model.padded_vocab(512, 1) == 512 and model.padded_vocab(512, 2) == 512
    assert model.padded_vocab(600, 1) == 640 and model.padded_vocab(600, 2) == 768
    assert model.padded_vocab(50257, 1) == 50304 and model.padded_vocab(50257, 4) == 50688
