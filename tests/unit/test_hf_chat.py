"""Marked chat templates render the model's own text, and mark exactly the assistant's tokens."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llmctl import hf as chat
from llmctl.errors import UserError

# the shape of SmolLM2-Instruct's own template: ChatML plus a default system prompt, no markers
SMOL_LIKE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PLAIN_CHATML = SMOL_LIKE.replace(
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}",
    "",
)
LLAMA2_LIKE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + message['content'] + '</s>' }}{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["Hello there, the capital of France is Paris and of Italy Rome."] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>")


def test_a_template_with_markers_is_used_as_is(tokenizer):
    tokenizer.chat_template = chat.CHATML_TEMPLATE
    assert chat.training_template(tokenizer) == chat.CHATML_TEMPLATE


@pytest.mark.parametrize("own", [SMOL_LIKE, PLAIN_CHATML])
def test_chatml_without_markers_gets_an_equivalent_marked_template(tokenizer, own):
    tokenizer.chat_template = own
    marked = chat.training_template(tokenizer)
    assert chat.has_generation_markers(marked) and not chat.has_generation_markers(own)
    convo = [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ]
    assert chat.render(tokenizer, convo, template=marked) == chat.render(tokenizer, convo)
    enc = tokenizer.apply_chat_template(
        convo, chat_template=marked, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    want = "".join(m["content"] + "<|im_end|>" for m in convo if m["role"] == "assistant")
    assert tokenizer.decode(ids) == want  # exactly the three answers and their end-of-turn tokens


def test_a_template_that_is_not_chatml_is_refused(tokenizer):
    tokenizer.chat_template = LLAMA2_LIKE
    with pytest.raises(UserError, match="no \\{% generation %\\} markers and is not ChatML"):
        chat.training_template(tokenizer, where="models/llama")
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        chat.training_template(tokenizer)
