"""--device and --dtype of the stages that load a Hugging Face model: auto picks CUDA when present
and bfloat16 there (float16 without bf16 support), float32 on the CPU; cuda without one is exit 2."""

from __future__ import annotations

import pytest
import torch

from llmctl import hf
from llmctl.errors import UserError


@pytest.fixture
def gpu(monkeypatch):
    """Pretend a CUDA device is present (the resolution is pure logic over these two answers)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_cuda_when_present(gpu):
    assert hf.resolve_device("auto") == "cuda" and hf.resolve_device("cuda") == "cuda"
    assert hf.resolve_device("cpu") == "cpu"  # asked for: the CPU even with a GPU


def test_auto_is_cpu_without_cuda_and_cuda_is_a_user_error(no_gpu):
    assert hf.resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match=r"perplexity.device=cuda: no CUDA device"):
        hf.resolve_device("cuda", key="perplexity.device")
    with pytest.raises(UserError, match="device=tpu"):
        hf.resolve_device("tpu")


def test_dtype_auto_follows_the_device(gpu, monkeypatch):
    assert hf.resolve_dtype("auto", "cuda") == torch.bfloat16
    assert hf.resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100, a T4
    assert hf.resolve_dtype("auto", "cuda") == torch.float16


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16"])
def test_explicit_dtypes_are_kept_on_every_device(name):
    assert hf.resolve_dtype(name, "cpu") == getattr(torch, name) == hf.resolve_dtype(name, "cuda")
    assert hf.dtype_name(getattr(torch, name)) == name


def test_unknown_dtype_names_the_key():
    with pytest.raises(UserError, match="dtype=fp8"):
        hf.resolve_dtype("fp8", "cpu")


def test_config_keys_are_validated():
    from llmctl import config
    from llmctl.clean import CleanConfig
    from llmctl.errors import ConfigError
    from llmctl.eval.config import EvalConfig

    assert config.load(EvalConfig, None, []).device == "auto"
    assert config.load(CleanConfig, None, ["perplexity.dtype=auto"]).perplexity.dtype == "auto"
    with pytest.raises(ConfigError, match="device"):
        config.load(EvalConfig, None, ["device=gpu"])
    with pytest.raises(ConfigError, match="perplexity.dtype"):
        config.load(CleanConfig, None, ["perplexity.dtype=half"])
