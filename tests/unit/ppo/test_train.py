"""The reward model as the PPO engine calls it: reward.json's normalisation applied to the score the
engine's own get_reward reads, and the response lengths recorded from the mask it passes."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")


def _tiny_classifier(seed: int = 0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=0)  # fmt: skip
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(cfg).eval()


def test_the_engine_reads_the_normalised_score_and_we_read_the_response_lengths():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.utils import get_reward

    from llmctl.ppo.train import reward_module

    model = _tiny_classifier()
    state = {"widths": [3]}
    wrapped = reward_module([(model, 1.0, 2.0, 4.0)], state)
    # left-padded prompts of width 3, then responses of 2 and 4 tokens (0 = pad)
    ids = torch.tensor([[0, 5, 6, 7, 8, 0, 0], [9, 5, 6, 7, 8, 9, 10]])
    _, raw, _ = get_reward(model, ids, 0, 3)
    _, got, _ = get_reward(wrapped, ids, 0, 3)
    assert torch.allclose(got, (raw - 2.0) / 4.0, atol=1e-6)
    assert state["lengths"] == [2, 4]
    assert not any(p.requires_grad for p in wrapped.parameters())


def test_a_combined_scorer_is_one_reward_module_summing_the_normalised_criteria():
    """Two criteria models on the policy's ids: the engine reads sum(weight * (score - mean) / std),
    which is what llmctl.rm.scorer.CombinedScorer scores a text with."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.utils import get_reward

    from llmctl.ppo.train import reward_module

    a, b = _tiny_classifier(0), _tiny_classifier(1)
    wrapped = reward_module([(a, 2.0, 0.5, 2.0), (b, 0.5, -1.0, 3.0)], {})
    ids = torch.tensor([[0, 5, 6, 7, 8, 0, 0], [9, 5, 6, 7, 8, 9, 10]])
    _, ra, _ = get_reward(a, ids, 0, 3)
    _, rb, _ = get_reward(b, ids, 0, 3)
    _, got, _ = get_reward(wrapped, ids, 0, 3)
    assert torch.allclose(got, 2.0 * (ra - 0.5) / 2.0 + 0.5 * (rb + 1.0) / 3.0, atol=1e-6)
    assert not torch.allclose(ra, rb)  # two different models, so the sum is not a rescaled one


def test_a_head_only_value_model_hands_the_optimizer_only_its_score_head():
    """ppo.value_train=head: the engine's optimizer (HF Trainer's, which takes the parameters that
    require grad) sees the head alone, and a value loss leaves the backbone's weights unchanged."""
    from llmctl.ppo.train import freeze_value_backbone

    value = _tiny_classifier().train()
    freeze_value_backbone(value)
    trainable = [n for n, p in value.named_parameters() if p.requires_grad]
    assert trainable == ["score.weight"]
    backbone = {n: p.detach().clone() for n, p in value.model.named_parameters()}
    head = value.score.weight.detach().clone()
    opt = torch.optim.SGD([p for p in value.parameters() if p.requires_grad], lr=0.5)
    value(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.sum().backward()
    opt.step()
    assert all(torch.equal(p, backbone[n]) for n, p in value.model.named_parameters())
    assert not torch.equal(value.score.weight, head)


def test_the_engine_reads_the_score_llmctl_rm_defines_for_the_response_text(tmp_path):
    """The engine hands the reward module the policy's ids (left-padded prompt, response, pads after
    the stop token) and reads the head at the last generated token; with the scorer's renders it
    gets what prompts.score (the held-out measure) gives for the decoded response: the conversation
    through the chat template, read at the template's end. The engine's own reading differs."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification
    from trl.experimental.utils import get_reward

    from llmctl.ppo import prompts as pr
    from llmctl.ppo.train import reward_module, scorer_renders
    from tests.fixtures.models import tiny_chat_llama

    tok = AutoTokenizer.from_pretrained(tiny_chat_llama(tmp_path / "m"))
    tok.pad_token, tok.padding_side = "<|endoftext|>", "left"
    stop, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                      pad_token_id=pad)  # fmt: skip
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(cfg).eval()
    scorer = SimpleNamespace(model=rm, tokenizer=tok, max_length=256, batch_size=4)
    prompts = [
        [{"role": "user", "content": "How are you?"}],
        [{"role": "user", "content": "Hi there, friend"}],
    ]
    p_ids = [pr.prompt_ids(tok, p) for p in prompts]
    # one response ended by the stop token, one truncated (no stop token)
    responses = [tok.encode("I am fine, thanks", add_special_tokens=False) + [stop],
                 tok.encode("Hello to you", add_special_tokens=False)]  # fmt: skip
    width = max(map(len, p_ids))
    length = max(map(len, responses))
    rows = [
        [pad] * (width - len(p)) + p + r + [pad] * (length - len(r))
        for p, r in zip(p_ids, responses, strict=True)
    ]
    ids = torch.tensor(rows)
    want = pr.score(scorer, prompts, [pr.response_text(tok, r, stop) for r in responses])
    by_ids = {tuple(i): p for i, p in zip(p_ids, prompts, strict=True)}
    state = {"widths": [width]}
    engine = reward_module([(rm, 1.0, 0.0, 1.0)], state, scorer_renders(scorer, tok, by_ids, stop))
    _, got, _ = get_reward(engine, ids, pad, width)
    assert torch.allclose(got, torch.tensor(want), atol=1e-5), (got, want)
    assert state["lengths"] == [len(r) for r in responses]
    _, raw, _ = get_reward(reward_module([(rm, 1.0, 0.0, 1.0)], {"widths": [width]}), ids, pad, width)
    assert not torch.allclose(raw, torch.tensor(want), atol=1e-3)
