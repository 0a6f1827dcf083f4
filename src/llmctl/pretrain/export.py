"""Megatron checkpoint -> Hugging Face LlamaForCausalLM (safetensors), checked by logits parity.

    python -m llmctl.pretrain.export SPEC.json          # what `llmctl pretrain` runs at the end

The checkpoint (any TP/PP layout) is loaded into a TP=1, PP=1 GPTModel in one process
(dist_checkpointing reshards), its weights are mapped onto LLaMA's, and both models score one
fixed batch: the export fails if any logit differs by more than the tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from llmctl import config as cfgmod
from llmctl.hf import honour_umask
from llmctl.pretrain.config import PretrainConfig


def to_llama(
    state: dict[str, torch.Tensor], cfg: PretrainConfig, vocab: int
) -> tuple[Any, dict[str, torch.Tensor]]:
    """(LlamaConfig, HF state dict) from a TP=1/PP=1 megatron GPTModel state dict (local or
    TransformerEngine layer spec)."""
    from transformers import LlamaConfig

    m = cfg.model
    heads, groups = m.num_attention_heads, m.num_query_groups or m.num_attention_heads
    d = m.hidden_size // heads
    hf_cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=m.hidden_size,
        intermediate_size=m.ffn(),
        num_hidden_layers=m.num_layers,
        num_attention_heads=heads,
        num_key_value_heads=groups,
        max_position_embeddings=m.seq_length,
        rms_norm_eps=m.norm_epsilon,
        rope_theta=m.rope_base,
        tie_word_embeddings=m.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        torch_dtype="float32",
    )
    out = {
        "model.embed_tokens.weight": state["embedding.word_embeddings.weight"],
        "model.norm.weight": state["decoder.final_layernorm.weight"],
    }
    if not m.tie_embeddings:
        out["lm_head.weight"] = state["output_layer.weight"]
    per_group = heads // groups
    for i in range(m.num_layers):
        p, q = f"decoder.layers.{i}.", f"model.layers.{i}."
        # megatron packs q, k, v per query group: [g0: q x per_group, k, v][g1: ...]
        qkv = state[p + "self_attention.linear_qkv.weight"].view(groups, per_group + 2, d, m.hidden_size)
        out[q + "self_attn.q_proj.weight"] = qkv[:, :per_group].reshape(heads * d, m.hidden_size)
        out[q + "self_attn.k_proj.weight"] = qkv[:, per_group].reshape(groups * d, m.hidden_size)
        out[q + "self_attn.v_proj.weight"] = qkv[:, per_group + 1].reshape(groups * d, m.hidden_size)
        out[q + "self_attn.o_proj.weight"] = state[p + "self_attention.linear_proj.weight"]
        # the local spec has separate norms; TransformerEngine's fuses them into the next linear
        out[q + "input_layernorm.weight"] = _either(state, p, "input_layernorm.weight", "linear_qkv")
        post = _either(state, p, "pre_mlp_layernorm.weight", "linear_fc1")
        out[q + "post_attention_layernorm.weight"] = post
        gate, up = state[p + "mlp.linear_fc1.weight"].chunk(2, dim=0)  # SwiGLU: [gate; up]
        out[q + "mlp.gate_proj.weight"], out[q + "mlp.up_proj.weight"] = gate, up
        out[q + "mlp.down_proj.weight"] = state[p + "mlp.linear_fc2.weight"]
    return hf_cfg, {k: v.detach().clone().contiguous().float() for k, v in out.items()}


def _either(state: dict[str, torch.Tensor], prefix: str, local: str, fused_into: str) -> torch.Tensor:
    if prefix + local in state:
        return state[prefix + local]
    owner = "self_attention." if fused_into == "linear_qkv" else "mlp."
    return state[prefix + owner + fused_into + ".layer_norm_weight"]


def main() -> None:
    from megatron.core import dist_checkpointing
    from transformers import AutoTokenizer, LlamaForCausalLM

    from llmctl.pretrain.train import Trainer

    spec = json.loads(Path(sys.argv[1]).read_text())
    cfg = cfgmod.from_dict(PretrainConfig, spec["config"])
    single = cfgmod.to_dict(cfg)
    single["parallel"].update(tensor=1, pipeline=1, distributed_optimizer=False)
    single["nproc"] = 1
    single["train"]["global_batch_size"] = single["train"]["micro_batch_size"]
    trainer = Trainer({**spec, "config": single})
    ckpt = Path(spec["checkpoint"])
    template = {"model": trainer.model.module.sharded_state_dict()}
    state = dist_checkpointing.load(template, str(ckpt))
    trainer.model.module.load_state_dict(state["model"])
    megatron_model = trainer.model.module.eval()
    raw = {k: v for k, v in megatron_model.state_dict().items() if not k.endswith("_extra_state")}
    hf_cfg, weights = to_llama(raw, cfg, trainer.padded_vocab)
    hf = LlamaForCausalLM(hf_cfg)
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not (cfg.model.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
    if cfg.model.tie_embeddings:
        hf.tie_weights()
    hf.eval()
    out = Path(spec["hf_out"])
    hf.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(
        Path(spec["tokenized"]) / "tokenizer", local_files_only=True, trust_remote_code=False
    ).save_pretrained(out)
    honour_umask(out)
    # parity on a fixed batch of real tokens
    trainer.datasets(1)
    tokens = trainer.micro_batches(trainer.valid_ds, 0)[0]["tokens"][:2]
    s = tokens.shape[1]
    pos = torch.arange(s).unsqueeze(0).expand_as(tokens)
    mask = torch.triu(torch.ones(1, 1, s, s, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        ours = megatron_model(tokens, pos, mask).float()
        reloaded = LlamaForCausalLM.from_pretrained(
            out, local_files_only=True, dtype=torch.float32, trust_remote_code=False
        ).eval()
        theirs = reloaded(tokens).logits.float()
    diff = float((ours - theirs).abs().max())
    (Path(spec["staging"]) / "export.json").write_text(
        json.dumps({"max_abs_logit_diff": diff, "checkpoint": ckpt.name})
    )
    if diff > spec.get("tolerance", 1e-4):
        raise RuntimeError(
            f"HF export logits differ from megatron's by {diff:.2e} (> {spec.get('tolerance', 1e-4)})"
        )


if __name__ == "__main__":
    main()
