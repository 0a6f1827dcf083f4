"""pretrain's export is device-independent: it reads a checkpoint's weights on the CPU in fp32 in
its own process (no trainer), whatever dtype and tensor-parallel padding trained them.

A GPU run saves bf16 weights with the vocabulary padded for its TP size; here such a checkpoint
is written directly (a bf16 GPTModel, embedding padded for TP=2) and exported on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

# what a bf16 GPU run leaves behind: bf16 parameters, embedding rows padded to 128 x TP(=2)
WRITE_BF16_CHECKPOINT = r"""
import json, os, sys, warnings
warnings.filterwarnings("ignore")
from pathlib import Path

def main():
    import torch
    import torch.distributed as dist
    from megatron.core import dist_checkpointing, parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
    from llmctl import config
    from llmctl.megatron import cpu
    from llmctl.pretrain.config import PretrainConfig
    from llmctl.megatron.model import gpt_model, padded_vocab, transformer_config

    spec = json.loads(Path(sys.argv[1]).read_text())
    cfg = config.from_dict(PretrainConfig, spec["config"])
    vocab = json.loads((Path(spec["tokenized"]) / "blend.json").read_text())["vocab_size"]
    cpu.apply()
    dist.init_process_group("gloo", init_method=f"file://{sys.argv[2]}/pg", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)
    model_parallel_cuda_manual_seed(7)
    tc = transformer_config(cfg, tensor=1, pipeline=1, bf16=True, sequence_parallel=False, cpu=True)
    rows = padded_vocab(vocab, cfg.parallel.tensor)
    model = gpt_model(tc, cfg, "local", rows, pre_process=True, post_process=True)
    with torch.no_grad():  # trained-looking weights: norms away from 1
        for name, p in model.named_parameters():
            if "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    # bf16 wraps the GPTModel in megatron's Float16Module: every weight, the norms' too, is bf16
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.module.embedding.word_embeddings.weight.dtype == torch.bfloat16
    os.makedirs(spec["checkpoint"])
    dist_checkpointing.save({"model": model.sharded_state_dict()}, spec["checkpoint"])
    torch.save({k: v.float() for k, v in model.state_dict().items() if not k.endswith("_extra_state")},
               Path(sys.argv[2]) / "weights.pt")
    print(rows)

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_export_reads_a_bf16_tp2_checkpoint_on_cpu_in_fp32(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(30)))
    )
    tok = tmp_path / "tok"
    r = llmctl("tokenize", str(src), "--out", str(tok), "--set", "tokenizer.vocab_size=600")
    assert r.returncode == 0, r.stderr
    vocab = json.loads((tok / "blend.json").read_text())["vocab_size"]
    from llmctl import config
    from llmctl.megatron.model import padded_vocab
    from llmctl.pretrain import PretrainConfig

    assert padded_vocab(vocab, 2) != padded_vocab(vocab, 1)  # TP=2 pads further than TP=1 does

    overrides = ["model.seq_length=64", "parallel.tensor=2", "nproc=2", "train.bf16=true"]
    cfg = config.load(PretrainConfig, None, overrides)
    staging = tmp_path / "staging"
    staging.mkdir()
    spec = {
        "config": config.to_dict(cfg),
        "tokenized": str(tok),
        "staging": str(staging),
        "checkpoint": str(staging / "checkpoints" / "iter_0000001"),
        "hf_out": str(staging / "hf"),
        "layer_spec": "local",
    }
    (staging / "export-spec.json").write_text(json.dumps(spec))
    (tmp_path / "write.py").write_text(WRITE_BF16_CHECKPOINT)
    r = subprocess.run(
        [sys.executable, str(tmp_path / "write.py"), str(staging / "export-spec.json"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = int(r.stdout.split()[-1])
    assert rows == -(-vocab // 256) * 256  # padded for TP=2 (128 x 2), not for the TP=1 that loads it
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}  # export hides the GPUs itself
    r = subprocess.run(
        [sys.executable, "-m", "llmctl.pretrain.export", str(staging / "export-spec.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((staging / "export.json").read_text())
    assert result["max_abs_logit_diff"] <= 1e-4
    assert result["parity"] == {"device": "cpu", "dtype": "float32", "tokens": [2, 64]}
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(staging / "hf", local_files_only=True)
    ref = torch.load(tmp_path / "weights.pt")
    assert hf.config.vocab_size == rows
    # the bf16 values, exactly, in fp32
    assert torch.equal(hf.model.embed_tokens.weight, ref["embedding.word_embeddings.weight"])
    assert hf.model.embed_tokens.weight.dtype == torch.float32
    assert torch.equal(hf.model.layers[1].mlp.down_proj.weight, ref["decoder.layers.1.mlp.linear_fc2.weight"])


def test_importing_export_does_not_start_torch():
    """export.main() hides the GPUs before torch starts: importing the module must not import torch."""
    code = "import sys, llmctl.pretrain.export; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
