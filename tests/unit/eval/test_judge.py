"""The reward-model judge's pure parts: outcomes with ties, the seeded bootstrap interval of a win
rate, and the check that a --judge is a reward model (exit 2 before anything loads)."""

from __future__ import annotations

import json

import pytest

from llmctl.errors import UserError
from llmctl.eval import judge


def test_outcomes_count_ties_half():
    a = [1.0, 0.0, 2.0, 5.0, 3.0]
    b = [0.5, 1.0, 2.0 + 1e-9, 1.0, 0.0]
    same = [False, False, False, True, False]  # identical answers: a tie whatever the floats say
    assert judge.outcomes(a, b, same) == [1.0, 0.0, 0.5, 0.5, 1.0]


def test_win_rate_and_its_bootstrap_interval_are_seeded():
    res = [1.0] * 30 + [0.0] * 10 + [0.5] * 10
    w = judge.win_rate(res, seed=7)
    assert w["win_rate"] == pytest.approx(0.7)
    assert (w["wins"], w["ties"], w["losses"], w["n"]) == (30, 10, 10, 50)
    lo, hi = w["ci95"]
    # the normal approximation: 0.7 ± 1.96 * sd / sqrt(n), sd of the outcomes = 0.4
    assert lo < 0.7 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.4 / 50**0.5, rel=0.15)
    assert judge.win_rate(res, seed=7) == w  # the same seed, the same interval
    assert judge.win_rate(res, seed=8)["ci95"] != w["ci95"]
    assert judge.win_rate([0.5] * 5, seed=1)["ci95"] == [0.5, 0.5]


def test_mean_se():
    assert judge.mean_se([1.0, 3.0]) == {"value": 2.0, "stderr": 1.0, "n": 2}
    assert judge.mean_se([4.0])["stderr"] is None


def save_config(d, cls, num_labels=2):
    """A config.json as transformers writes it (id2label holds the labels)."""
    d.mkdir(parents=True)
    labels = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    (d / "config.json").write_text(
        json.dumps({"architectures": [cls], "model_type": "llama", "id2label": labels})
    )


def test_a_judge_that_is_not_a_reward_model_is_exit_2(tmp_path):
    with pytest.raises(UserError, match=r"--judge .*sft: not a reward model \(no reward.json\)"):
        judge.check([str(tmp_path / "sft")])
    lm = tmp_path / "lm"
    save_config(lm / "hf", "LlamaForCausalLM")  # 2 labels by default
    (lm / "reward.json").write_text(json.dumps({"max_length": 64}))
    with pytest.raises(
        UserError, match=r"--judge .*lm: .*LlamaForCausalLM .* not a 1-label sequence classifier"
    ):
        judge.check([str(lm)])
    rm = tmp_path / "rm"
    save_config(rm / "hf", "LlamaForSequenceClassification", num_labels=1)
    (rm / "reward.json").write_text(json.dumps({"max_length": 64}))
    combo = tmp_path / "combo"
    save_config(combo / "criteria" / "help" / "hf", "LlamaForSequenceClassification", num_labels=1)
    save_config(combo / "criteria" / "harm" / "hf", "LlamaForSequenceClassification", num_labels=2)
    spec = {"combined": {n: {"path": f"criteria/{n}", "weight": 1.0} for n in ("help", "harm")}}
    (combo / "reward.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"criteria/harm/hf holds .* with 2 labels"):
        judge.check([str(rm), str(combo)])
    assert judge.check([str(rm), str(rm)]) == {"rm": rm, "rm-2": rm}
