"""ppo's pad token: a model that pads with its end-of-turn token (SmolLM2 does) gets another special
token as pad, the reward model follows, and a tokenizer with no spare special token is exit 2."""

from __future__ import annotations

import json

import pytest

from llmctl.errors import UserError
from llmctl.ppo.stage import policy_tokenizer
from tests.fixtures.models import tiny_chat_llama


@pytest.fixture(scope="module")
def padded_with_eot(tmp_path_factory):
    """The tiny chat model with SmolLM2's tokenizer set-up: pad = eos = <|im_end|>."""
    d = tiny_chat_llama(tmp_path_factory.mktemp("pad") / "m")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["pad_token"] = "<|im_end|>"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


def test_a_model_padding_with_its_end_of_turn_gets_endoftext_as_pad(padded_with_eot):
    tok, stop = policy_tokenizer(padded_with_eot, "policy")
    assert stop == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id != stop
    assert tok.padding_side == "left"


def test_no_spare_special_token_is_a_user_error(padded_with_eot, tmp_path, monkeypatch):
    import shutil

    d = shutil.copytree(padded_with_eot, tmp_path / "m")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["bos_token"] = "<|im_end|>"  # no unk; bos is the end of turn too
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr("llmctl.ppo.stage.PAD_FALLBACK", "<|not-in-the-vocabulary|>")
    with pytest.raises(UserError, match="pad token must exist and differ"):
        policy_tokenizer(d, "policy")
