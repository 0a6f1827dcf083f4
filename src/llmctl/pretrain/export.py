"""Megatron checkpoint -> Hugging Face LlamaForCausalLM (safetensors), checked by logits parity.

    python -m llmctl.pretrain.export SPEC.json          # what `llmctl pretrain` runs at the end

Device-independent by construction: this process hides every GPU before torch starts, loads the
checkpoint's weights (any TP/PP layout, bf16 or fp32) into a TP=1, PP=1 fp32 GPTModel on the CPU
(a single-rank gloo group; dist_checkpointing reshards and casts; no trainer, DDP or optimizer),
maps them onto LLaMA's, and both fp32 models score one fixed batch of real tokens: the export
fails if any logit differs by more than the tolerance. The training device and dtype never
enter the comparison.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmctl import config as cfgmod
from llmctl import hf
from llmctl.formats import tokens
from llmctl.pretrain.config import PretrainConfig

if TYPE_CHECKING:  # torch is imported inside the functions: main() must hide the GPUs first
    import torch

PARITY_ROWS, PARITY_MAX_TOKENS = 2, 512  # the parity batch: bounded, as it runs on the CPU


def to_llama(
    state: dict[str, torch.Tensor],
    cfg: PretrainConfig,
    vocab: int,
    *,
    eos: int | None = None,
    pad: int | None = None,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """(LlamaConfig, HF state dict) from a TP=1/PP=1 megatron GPTModel state dict (local or
    TransformerEngine layer spec). eos/pad: the tokenizer's end-of-document and padding ids, so
    that config.json agrees with the tokenizer (transformers' defaults, 2 and none, do not)."""
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
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
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


def parity_tokens(tokenized: Path, blend: dict[str, Any], seq_length: int) -> torch.Tensor:
    """A fixed [2, min(seq, 512)] batch of real tokens: the first documents of the first source."""
    import torch

    from llmctl.megatron.datasets import IndexedDataset

    ds = IndexedDataset(str(tokenized / blend["blend"][0][0]))
    if len(ds) == 0:
        raise RuntimeError(f"{tokenized}: no documents to check the export's logits on")
    seq = min(seq_length, PARITY_MAX_TOKENS)
    flat: list[int] = []
    i = 0
    while len(flat) < PARITY_ROWS * seq:  # wraps around a corpus shorter than the batch
        flat.extend(int(x) for x in ds[i % len(ds)])
        i += 1
    return torch.tensor(flat[: PARITY_ROWS * seq], dtype=torch.long).view(PARITY_ROWS, seq)


def export(spec: dict[str, Any]) -> float:
    """Write the HF directory at spec["hf_out"]; the largest logit difference (fp32 vs fp32, CPU)."""
    import torch
    import torch.distributed as dist
    from transformers import LlamaForCausalLM

    from llmctl.megatron.checkpoint import load_cpu_model

    cfg = cfgmod.from_dict(PretrainConfig, spec["config"])
    tokenized, ckpt = Path(spec["tokenized"]), Path(spec["checkpoint"])
    blend = tokens.read_blend(tokenized)
    vocab = int(blend["vocab_size"])
    with tempfile.TemporaryDirectory(prefix="llmctl-export-") as scratch:
        megatron_model = load_cpu_model(cfg, ckpt, vocab, Path(scratch))
        raw = {k: v for k, v in megatron_model.state_dict().items() if not k.endswith("_extra_state")}
        hf_cfg, weights = to_llama(
            raw, cfg, megatron_model.vocab_size, eos=blend.get("eod"), pad=blend.get("pad")
        )
        llama = LlamaForCausalLM(hf_cfg)
        missing, unexpected = llama.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not (cfg.model.tie_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
        if cfg.model.tie_embeddings:
            llama.tie_weights()
        out = Path(spec["hf_out"])
        hf.save_model(llama.eval(), out)  # safetensors, modes as the umask asks (not 0600)
        del llama, weights
        hf.save_tokenizer(hf.load_tokenizer(tokenized / tokens.TOKENIZER, what="export"), out)
        batch = parity_tokens(tokenized, blend, cfg.model.seq_length)
        s = batch.shape[1]
        pos = torch.arange(s).unsqueeze(0).expand_as(batch)
        mask = torch.triu(torch.ones(1, 1, s, s, dtype=torch.bool), diagonal=1)
        with torch.no_grad():
            ours = megatron_model(batch, pos, mask)
            reloaded = hf.load_causal_lm(out, what="export", dtype=torch.float32)
            theirs = reloaded(batch).logits
        if ours.dtype != torch.float32 or theirs.dtype != torch.float32:
            raise RuntimeError(f"parity must compare fp32 logits, got {ours.dtype} and {theirs.dtype}")
        diff = float((ours - theirs).abs().max())
        if dist.is_initialized():
            dist.destroy_process_group()
    (Path(spec["staging"]) / "export.json").write_text(
        json.dumps(
            {
                "max_abs_logit_diff": diff,
                "checkpoint": ckpt.name,
                "parity": {"device": "cpu", "dtype": "float32", "tokens": list(batch.shape)},
            }
        )
    )
    tolerance = spec.get("tolerance", 1e-4)
    if diff > tolerance:
        raise RuntimeError(
            f"HF export logits differ from the megatron-core model's by {diff:.2e} (> {tolerance})"
        )
    return diff


def main() -> None:
    # before torch starts: CUDA stays invisible to this process, so the weights are read and
    # compared on the CPU in fp32 whatever device and dtype trained them
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    export(json.loads(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":  # dist_checkpointing's spawn-based workers re-import this module
    main()
