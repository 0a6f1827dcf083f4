"""Every record shape becomes one `messages` record, or a rejection with the reason."""

from __future__ import annotations

import random

import pytest

from llmctl.errors import UserError
from llmctl.sft.data import Reject, Template, detect, normalise

CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
}


def test_every_shape_normalises_to_the_same_messages():
    want = [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}]
    rows = [
        {"messages": want},
        {"conversations": [{"from": "human", "value": "Add 2 and 3."}, {"from": "gpt", "value": "5"}]},
        {"prompt": "Add 2 and 3.", "completion": "5"},
        {"prompt": [want[0]], "completion": [want[1]]},
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
    ]
    assert [detect(r) for r in rows] == [
        "chat",
        "sharegpt",
        "prompt_completion",
        "prompt_completion",
        "alpaca",
    ]
    assert all(normalise(r) == {"messages": want} for r in rows)
    alpaca = normalise({"instruction": "Add.", "input": "2 and 3", "output": "5"})
    assert alpaca["messages"][0]["content"] == "Add.\n\n2 and 3"
    assert normalise(CHAT) == CHAT


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"messages": [{"role": "user", "content": "Hi"}]}, "no_assistant_turn"),
        (
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]},
            "empty_content",
        ),
        (
            {"messages": [{"role": "wizard", "content": "Hi"}, {"role": "assistant", "content": "x"}]},
            "unknown_role",
        ),
        ({"messages": []}, "empty_conversation"),
        ({"messages": ["hi"]}, "bad_message"),
        ({"conversations": [{"from": "alien", "value": "x"}]}, "unknown_role"),
        ({"text": "plain text"}, "unknown_format"),
        (["not", "an", "object"], "not_an_object"),
        ({"instruction": "", "output": "x"}, "empty_content"),
    ],
)
def test_unusable_records_are_rejected_with_a_reason(row, reason):
    with pytest.raises(Reject) as e:
        normalise(row)
    assert e.value.reason == reason


def test_a_trailing_prompt_is_cut_after_the_last_answer():
    row = {"messages": [*CHAT["messages"], {"role": "user", "content": "Still there?"}]}
    assert normalise(row) == CHAT


def test_template_draws_one_phrasing_per_example_with_the_seed(tmp_path):
    path = tmp_path / "sst2.yaml"
    path.write_text(
        "name: sst2\ntemplates:\n  - 'Review: {sentence} Positive or negative?'\n"
        "  - '{sentence}\\nDid the reviewer like it?'\nanswer: label\nanswer_choices: [negative, positive]\n"
    )
    t = Template.load(path)
    assert t.columns() == {"sentence", "label"}
    rows = [{"sentence": f"film {i}", "label": i % 2} for i in range(40)]
    a = [normalise(r, template=t, rng=random.Random(7))["messages"] for r in rows]
    rng = random.Random(7)
    b = [normalise(r, template=t, rng=rng)["messages"] for r in rows]
    assert a[3][1]["content"] == "positive" and a[4][1]["content"] == "negative"
    prompts = {m[0]["content"].startswith("Review:") for m in b}
    assert prompts == {True, False}  # both phrasings are used across the examples
    rng2 = random.Random(7)
    assert b == [normalise(r, template=t, rng=rng2)["messages"] for r in rows]  # same seed, same draw
    with pytest.raises(Reject) as e:
        normalise({"sentence": "x"}, template=t)
    assert e.value.reason == "template_missing_column"
    with pytest.raises(UserError, match="column.*label.*not in the data"):
        t.check_columns({"sentence", "idx"})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("templates: []\nanswer: y\n", "non-empty list"),
        ("templates: ['{x}']\n", "'answer'"),
        ("templates: ['{x']\nanswer: y\n", "bad format string"),
        ("templates: ['{x}']\nanswer: y\nanswers: z\n", "unknown key"),
    ],
)
def test_bad_templates_are_user_errors_naming_the_file(tmp_path, text, match):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match) as e:
        Template.load(path)
    assert str(path) in str(e.value)
