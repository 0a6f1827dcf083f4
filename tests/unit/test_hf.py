"""--device and --dtype of the stages that load a Hugging Face model: auto picks CUDA when present
and bfloat16 there (float16 without bf16 support), float32 on the CPU; cuda without one is exit 2."""

from __future__ import annotations

import os

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


# ---------------------------------------------------------------- loading (the one HF boundary)
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.fixtures.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("hf") / "model")


def test_an_artifact_loads_through_its_hf_dir_offline(tiny, tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    art = tmp_path / "run"
    shutil.copytree(tiny, art / "hf")
    assert hf.model_dir(art) == art / "hf" and hf.model_dir(tiny) == tiny
    model = hf.load_causal_lm(art, what="eval", dtype=torch.bfloat16, device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert next(model.parameters()).dtype == torch.bfloat16
    assert hf.load_tokenizer(art, what="eval").eos_token == "</s>"
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_a_sequence_classifier_loads_from_a_causal_lm_dir(tiny):
    model = hf.load_sequence_classifier(tiny, what="rm", dtype=torch.float32, num_labels=1)
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1


def test_pickled_weights_only_are_refused_naming_the_file(tiny, tmp_path):
    import shutil

    d = tmp_path / "pickled"
    shutil.copytree(tiny, d)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    pickles = r"eval: .*pickled holds weights only as pickles \(pytorch_model.bin\)"
    with pytest.raises(UserError, match=pickles):
        hf.load_causal_lm(d, what="eval", dtype=torch.float32)
    with pytest.raises(UserError, match="not a Hugging Face model directory"):
        hf.load_causal_lm(tmp_path / "nothing", what="eval", dtype=torch.float32)


def test_chat_template_renders_and_its_absence_is_a_user_error(tiny):
    tok = hf.load_tokenizer(tiny, what="sft")
    assert hf.chat_template(tok) is None
    with pytest.raises(UserError, match="sft: the tokenizer has no chat template"):
        hf.render_chat(tok, [{"role": "user", "content": "hi"}], what="sft")
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    text = hf.render_chat(tok, [{"role": "user", "content": "hi"}], what="sft")
    assert text == "<user>hi"


def test_load_adapter_round_trips_onto_a_plain_and_a_peft_model(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from tests.fixtures.models import tiny_llama

    base_dir = tiny_llama(tmp_path / "base")
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(0))
    tuned = get_peft_model(
        hf.load_causal_lm(base_dir, what="t", dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    tuned.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    with torch.no_grad():
        want = tuned(ids).logits
        plain = hf.load_causal_lm(base_dir, what="t", dtype=torch.float32)
        assert (plain(ids).logits - want).abs().max() > 1e-4  # the adapter changes the outputs
        wrapped = hf.load_adapter(plain, tmp_path / "adapter", trainable=False)
        assert torch.allclose(wrapped(ids).logits, want, atol=1e-6)
        fresh = get_peft_model(
            hf.load_causal_lm(base_dir, what="t", dtype=torch.float32),
            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        )
        same = hf.load_adapter(fresh, tmp_path / "adapter", trainable=True)
        assert same is fresh and torch.allclose(same(ids).logits, want, atol=1e-6)


def test_lora_does_not_import_gptqmodel_for_a_plain_model(tmp_path):
    """With gptqmodel installed, peft imports it on every wrapped layer (10-20 s, a banner); after
    hf.lora_config the probe answers without importing it, and LoRA wraps the layers as before."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from types import SimpleNamespace; from peft import get_peft_model;"
        "from llmctl import hf; from tests.fixtures.models import tiny_llama;"
        f"m = hf.load_causal_lm(tiny_llama({str(tmp_path / 'b')!r}), what='t', dtype=torch.float32);"
        "lc = SimpleNamespace(r=4, alpha=8, dropout=0.0, target_modules=['q_proj']);"
        "p = get_peft_model(m, hf.lora_config(lc, 'CAUSAL_LM'));"
        "print(sum('lora_A' in n for n, _ in p.named_parameters()), 'gptqmodel' in sys.modules)"
    )
    from tests.conftest import REPO

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["2", "False"]  # q_proj of 2 layers wrapped; gptqmodel untouched


def test_the_last_checkpoint_is_the_newest_one_written_to_its_end(tmp_path):
    """A run killed while it saved leaves checkpoint-N without, or with half of, trainer_state.json
    (the trainer's last file): resume takes the newest checkpoint whose state parses and names N."""
    import json

    def ckpt(step, state):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"w")
        if state is not None:
            (d / "trainer_state.json").write_text(state)

    assert hf.last_checkpoint(tmp_path / "missing") is None
    assert hf.last_checkpoint(tmp_path) is None
    ckpt(10, json.dumps({"global_step": 10}))
    ckpt(9, json.dumps({"global_step": 9}))  # numbers, not names: 10 beats 9
    assert hf.last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    ckpt(20, json.dumps({"global_step": 20, "log_history": [{"loss": 1.0}]})[:25])  # cut by the kill
    ckpt(30, None)  # killed before its state
    ckpt(40, json.dumps({"global_step": 39}))  # not this checkpoint's state
    (tmp_path / "checkpoint-50.tmp").mkdir()
    assert hf.last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text(json.dumps({"global_step": 20}))
    assert hf.last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-20")
