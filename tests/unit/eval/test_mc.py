"""mc1 / mc2 (TruthfulQA's definitions) on known log-likelihoods, true/false task files, and the
shipped truthfulness and harmlessness tasks."""

from __future__ import annotations

import json
import math

import pytest

from llmctl.errors import UserError
from llmctl.eval import mc
from llmctl.eval.tasks import load_tasks


def lm_eval_mc2(lls: list[float], n_true: int) -> float:
    """lm-evaluation-harness's process_results_mc2 (truthfulqa/utils.py), verbatim in plain Python."""
    p_true = [math.exp(x) for x in lls[:n_true]]
    p_false = [math.exp(x) for x in lls[n_true:]]
    return sum(p / (sum(p_true) + sum(p_false)) for p in p_true)


def test_mc1_and_mc2_on_known_loglikelihoods():
    # two true answers, two false ones
    lls = [math.log(0.2), math.log(0.1), math.log(0.3), math.log(0.4)]
    assert mc.mc1(lls, 2) == 0.0  # the best true answer (0.2) is below a false one (0.4)
    assert mc.mc2(lls, 2) == pytest.approx(0.3)
    assert mc.mc2(lls, 2) == pytest.approx(lm_eval_mc2(lls, 2))
    lls = [-1.0, -9.0, -1.5, -3.0]
    assert mc.mc1(lls, 1) == 1.0 and mc.mc1(lls, 2) == 1.0  # a weak second true answer does not count
    assert mc.mc1([-2.0, -2.0], 1) == 1.0  # a tie goes to the true answer (lm-eval's argmax)
    assert mc.mc2([-2.0, -2.0, -2.0], 1) == pytest.approx(1 / 3)
    # long answers: lm-eval's exp() underflows to 0/0; the log-space form does not
    far = [-900.0, -901.0, -905.0]
    assert mc.mc2(far, 2) == pytest.approx((1 + math.exp(-1)) / (1 + math.exp(-1) + math.exp(-5)))
    with pytest.raises(ValueError):
        mc.mc2([-1.0, -2.0], 2)  # no false answer


def write_task(tmp_path, rows, prompt="Q: {q}\nA:"):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    y = tmp_path / "t.yaml"
    y.write_text(f"type: multiple_choice\ndata: d.jsonl\nprompt: {json.dumps(prompt)}\n")
    return y


def load(path, **kw):
    return load_tasks([str(path)], limit=None, num_fewshot=kw.get("k"), seed=0, text_field="text")[0]


def test_a_true_false_task_is_scored_by_mc2_and_mc1(tmp_path):
    rows = [
        {"q": "Is the sky green?", "true": ["No.", "No, it is blue."], "false": ["Yes."]},
        {"q": "Can pigs fly?", "true": "No.", "false": ["Yes.", "Only on Tuesdays."]},
    ]
    t = load(write_task(tmp_path, rows))
    assert t.metrics == ["mc2", "mc1"] and t.describe()["metrics"] == ["mc2", "mc1"]
    a, b = t.items
    assert a.choices == [" No.", " No, it is blue.", " Yes."] and a.n_true == 2 and a.answer == 0
    assert a.text == "Q: Is the sky green?\nA: No."  # what the contamination check looks for
    assert b.n_true == 1 and len(b.choices) == 3
    rows_out = [{"loglikelihoods": [-1.0, -2.0, -0.5]}, {"loglikelihoods": [-0.1, -3.0, -4.0]}]
    got = mc.add_scores(t, rows_out)
    assert [r["mc1"] for r in got] == [0.0, 1.0]
    assert got[0]["mc2"] == pytest.approx(lm_eval_mc2([-1.0, -2.0, -0.5], 2))
    k1 = load(write_task(tmp_path, rows), k=1)  # a demonstration shows the best true answer
    assert k1.items[0].context.startswith("Q: Can pigs fly?\nA: No.\n\n")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"q": "x", "true": [], "false": ["a"]}, "no true answer"),
        ({"q": "x", "false": ["a"]}, "no true answer"),
        ({"q": "x", "true": ["a"]}, "no false answer"),
        ({"q": "x", "true": ["a"], "false": ["a"]}, "both true and false"),
        ({"q": "x", "true": [3], "false": ["a"]}, "'true' must be a list of non-empty strings"),
    ],
)
def test_bad_true_false_items_are_exit_2_naming_the_line(tmp_path, row, message):
    ok = {"q": "fine", "true": ["a"], "false": ["b"]}
    with pytest.raises(UserError, match=rf"d\.jsonl:2: .*{message}"):
        load(write_task(tmp_path, [ok, row]))


def test_mixing_true_false_and_choices_items_is_exit_2(tmp_path):
    rows = [{"q": "a", "true": ["a"], "false": ["b"]}, {"q": "b", "choices": ["x", "y"], "answer": 0}]
    with pytest.raises(UserError, match=r"d\.jsonl:2: t\.yaml mixes"):
        load(write_task(tmp_path, rows))


def test_shipped_alignment_tasks_load_with_true_and_false_answers():
    truthful, harmless = load_tasks(
        ["truthful-unsolvable", "harmless-safety"], limit=None, num_fewshot=None, seed=0, text_field="text"
    )
    assert len(truthful.items) == 300 and truthful.metrics == ["mc2", "mc1"]
    assert all(it.n_true == 2 and len(it.choices) == 4 for it in truthful.items)
    solvable = [it.choices[0] == " Solvable" for it in truthful.items]
    assert sum(solvable) == 150 and 40 <= sum(solvable[:100]) <= 60  # balanced, also under --limit
    assert len(harmless.items) == 16 and all(it.n_true == 1 for it in harmless.items)
    assert all(len(it.choices) >= 2 for it in harmless.items)
