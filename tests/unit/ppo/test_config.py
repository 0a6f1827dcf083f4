"""ppo's and bon's recipe keys: bad combinations name the key; prompt files are read or refused."""

from __future__ import annotations

import json

import pytest

from llmctl import config as cfgmod
from llmctl.errors import ConfigError, UserError
from llmctl.ppo.config import BonConfig, PpoConfig
from llmctl.ppo.prompts import read_prompts, split


@pytest.mark.parametrize(
    ("override", "key"),
    [
        (["ppo.batch_size=6", "ppo.num_mini_batches=4"], "ppo.num_mini_batches"),
        (["ppo.batch_size=8", "ppo.num_mini_batches=2", "ppo.whiten_rewards=true"], "ppo.whiten_rewards"),
        (["ppo.kl_estimator=k2"], "ppo.kl_estimator"),
        (["ppo.gamma=0"], "ppo.gamma"),
        (["ppo.lam=1.5"], "ppo.lam"),
        (["ppo.temperature=0"], "ppo.temperature"),
        (["ppo.kl_coef=-0.1"], "ppo.kl_coef"),
        (["ppo.kl_target=0"], "ppo.kl_target"),
        (["ppo.kl_target=1", "ppo.kl_coef=0"], "ppo.kl_coef"),
        (["ppo.kl_horizon=0"], "ppo.kl_horizon"),
        (["data.held_out=0"], "data.held_out"),
        (["ppo.device=tpu"], "ppo.device"),
        (["ppo.value_train=lora"], "ppo.value_train"),
    ],
)
def test_bad_ppo_keys_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfgmod.load(PpoConfig, None, override, {})


def test_whitening_with_eight_prompts_per_mini_batch_is_accepted():
    cfg = cfgmod.load(PpoConfig, None, ["ppo.batch_size=8", "ppo.grad_accum=2", "ppo.num_mini_batches=2",
                                        "ppo.whiten_rewards=true"], {})  # fmt: skip
    assert cfg.ppo.whiten_rewards and cfg.ppo.batch_size * cfg.ppo.grad_accum // cfg.ppo.num_mini_batches == 8


@pytest.mark.parametrize(("override", "key"), [(["bon.n=1"], "bon.n"), (["bon.top_p=0"], "bon.top_p")])
def test_bad_bon_keys_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfgmod.load(BonConfig, None, override, {})


def test_prompts_come_from_strings_messages_and_chats(tmp_path):
    f = tmp_path / "p.jsonl"
    rows = [
        {"prompt": "Hi"},
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]},
        {"messages": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"},
                      {"role": "user", "content": "C"}, {"role": "assistant", "content": "D"}]},
    ]  # fmt: skip
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = read_prompts([f], system_prompt="Be brief.")
    assert got[0] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert got[1] == rows[1]["prompt"]  # a system turn of its own is kept
    assert [m["content"] for m in got[2]] == ["Be brief.", "A", "B", "C"]  # up to the last assistant turn


def test_an_empty_or_malformed_prompt_file_is_a_user_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no prompts"):
        read_prompts([empty])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not a prompt record"):
        read_prompts([bad])


def test_a_chat_without_a_turn_before_the_assistant_is_skipped_and_counted(tmp_path):
    f = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "assistant", "content": "Hello? Anyone?"}]}, {"prompt": "Hi"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    skipped: dict[str, int] = {}
    assert read_prompts([f], skipped=skipped) == [[{"role": "user", "content": "Hi"}]]
    assert skipped == {"empty_content": 1}


def test_the_held_out_split_is_seeded_and_leaves_training_prompts():
    prompts = [[{"role": "user", "content": str(i)}] for i in range(10)]
    a, b = split(prompts, 3, 1), split(prompts, 3, 1)
    assert a == b and len(a[0]) == 7 and len(a[1]) == 3
    assert not {p[0]["content"] for p in a[0]} & {p[0]["content"] for p in a[1]}
    with pytest.raises(UserError, match="data.held_out=10"):
        split(prompts, 10, 1)


@pytest.mark.parametrize(
    ("kl", "want"),
    [(2.0, 0.11), (1.1, 0.105), (1.0, 0.1), (0.5, 0.09), (0.0, 0.09)],  # the error is clipped to +-0.2
)
def test_the_adaptive_kl_controller_steers_the_coefficient_to_the_target(kl, want):
    """Ziegler et al. (2019): coef * (1 + clip(KL / target - 1, -0.2, 0.2) * episodes / horizon)."""
    from llmctl.ppo.train import adapt_kl_coef

    assert adapt_kl_coef(0.1, kl, 1.0, 8, 16) == pytest.approx(want)
