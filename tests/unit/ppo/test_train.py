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
