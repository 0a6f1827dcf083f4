"""Preference records -> pairs: ranking expansion counts, ratings gaps, rejects with reasons, the
prompt-level split, and the bad inputs that are exit 2 (FILE:LINE and the key)."""

from __future__ import annotations

import itertools
import math

import pytest

from llmctl.errors import UserError
from llmctl.rm.config import parse_prefs_args
from llmctl.rm.data import Reject, SourceReader, expand_ranking, split_by_prompt


def read(rows, **kw):
    r = SourceReader("s", **kw)
    rejects = []
    for i, row in enumerate(rows, 1):
        try:
            r.add(row, f"f.jsonl:{i}", "f.jsonl")
        except Reject as e:
            rejects.append(e.reason)
    pairs, unpaired = r.finish()
    return pairs, rejects + [u[2] for u in unpaired], r


def text(msgs):
    return msgs[0]["content"]


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7])
def test_a_ranking_of_k_gives_exactly_c_k_2_ordered_pairs(k):
    responses = [f"answer {i}" for i in range(k)]
    ranking = list(range(k))[::-1]  # the last response is the best
    pairs, rejects, _ = read([{"prompt": "q", "responses": responses, "ranking": ranking}])
    assert len(pairs) == math.comb(k, 2) and not rejects
    got = {(text(p.chosen), text(p.rejected)) for p in pairs}
    want = {(f"answer {a}", f"answer {b}") for a, b in itertools.combinations(ranking, 2)}
    assert got == want  # every pair has the better-ranked response chosen


def test_expand_ranking_orders_by_rank_not_by_position():
    assert expand_ranking(["a", "b", "c"], [2, 0, 1]) == [("c", "a"), ("c", "b"), ("a", "b")]


def test_identical_responses_of_a_ranking_are_dropped_and_counted():
    pairs, rejects, r = read([{"prompt": "q", "responses": ["x", "x", "y"], "ranking": [0, 1, 2]}])
    assert len(pairs) == 2 and r.dropped["identical"] == 1 and not rejects


def test_max_pairs_per_prompt_caps_a_ranking():
    rows = [{"prompt": "q", "responses": list("abcde"), "ranking": [0, 1, 2, 3, 4]}]
    pairs, _, r = read(rows, max_pairs_per_prompt=4)
    assert len(pairs) == 4 and r.dropped["over_max_pairs_per_prompt"] == 6


def test_ratings_pair_by_prompt_with_the_minimum_gap():
    rows = [
        {"prompt": "p1", "response": "a", "score": 5},
        {"prompt": "p1", "response": "b", "score": 4.5},  # within 1.0 of a: a tie
        {"prompt": "p1", "response": "c", "score": 1},
        {"prompt": "p2", "response": "d", "score": 3},  # alone: no pair
        {"prompt": "p3", "response": "e", "score": 2},
        {"prompt": "p3", "response": "f", "score": 2},  # equal: a tie, both unpaired
    ]
    pairs, rejects, r = read(rows, min_score_gap=1.0)
    assert sorted((text(p.chosen), text(p.rejected)) for p in pairs) == [("a", "c"), ("b", "c")]
    assert r.dropped["tie"] == 2
    assert sorted(rejects) == ["no_pair", "no_pair", "no_pair"]  # d, e, f


def test_pair_records_rejects_with_reasons_and_margins():
    rows = [
        {"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 2},
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": "q", "chosen": "", "rejected": "bad"},
        {"prompt": "q", "chosen": "ok", "rejected": "bad", "margin": "big"},
        {"prompt": "q", "chosen": [{"role": "user", "content": "x"}], "rejected": "bad"},
        {"prompt": [{"role": "robot", "content": "hi"}], "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "a"},
        ["not", "an", "object"],
        {
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "chosen": [{"role": "assistant", "content": "c"}],
            "rejected": [{"role": "assistant", "content": "r"}],
        },
    ]
    pairs, rejects, _ = read(rows)
    assert len(pairs) == 2 and pairs[0].margin == 2.0 and pairs[1].margin is None
    assert pairs[1].prompt[0] == {"role": "system", "content": "s"}
    assert rejects == [
        "identical", "empty_content", "bad_margin", "bad_message", "unknown_role", "missing_column",
        "not_an_object",
    ]  # fmt: skip


def test_system_prompt_is_added_to_prompts_without_one():
    pairs, _, _ = read([{"prompt": "q", "chosen": "a", "rejected": "b"}], system_prompt="Be kind.")
    assert pairs[0].prompt == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("ranking", "match"),
    [
        ([0, 0, 1], r"f.jsonl:1: key 'ranking' \[0, 0, 1\] repeats index 0"),
        ([0, 1, 3], "not a permutation"),
        ([0, 1], "not a permutation"),
        ("0,1,2", "must be a list of response indices"),
    ],
)
def test_a_bad_ranking_is_a_user_error_naming_file_line_and_key(ranking, match):
    with pytest.raises(UserError, match=match):
        read([{"prompt": "q", "responses": ["a", "b", "c"], "ranking": ranking}])


def test_a_file_without_the_columns_is_a_user_error_naming_file_and_line():
    with pytest.raises(UserError, match=r"f.jsonl:1: not a preference record.*it has: answer, question"):
        read([{"question": "q", "answer": "a"}])


def test_the_held_out_split_never_shares_a_prompt():
    rows = [
        {"prompt": f"q{i % 37}", "responses": [f"a{i}", f"b{i}", f"c{i}"], "ranking": [0, 1, 2]}
        for i in range(200)
    ]
    pairs, _, _ = read(rows)
    for seed in range(5):
        train, held = split_by_prompt(pairs, 8, seed)
        assert len(train) + len(held) == len(pairs) == 600
        assert not {p.key for p in train} & {p.key for p in held}
        assert len({p.key for p in held}) == 8
    assert split_by_prompt(pairs, 8, 1)[1] == split_by_prompt(pairs, 8, 1)[1]  # seeded
    with pytest.raises(UserError, match="data.held_out=37 prompts leaves none"):
        split_by_prompt(pairs, 37, 0)


def test_prefs_arguments():
    got = parse_prefs_args(["hh=a/b.jsonl", "x/pairs.jsonl.zst"])
    assert {k: v.path for k, v in got.items()} == {"hh": "a/b.jsonl", "pairs": "x/pairs.jsonl.zst"}
    with pytest.raises(UserError, match="given twice"):
        parse_prefs_args(["a.jsonl", "y/a.jsonl"])


@pytest.mark.parametrize("path", ["data/rm/mc-pairs.jsonl.zst", "tests/assets/rm/mc-pairs-48.jsonl"])
def test_the_shipped_preference_data_reads_without_a_reject(path):
    from pathlib import Path

    from llmctl.formats import documents

    full = Path(__file__).resolve().parents[3] / path
    r = SourceReader("mc")
    for source, line, row in documents.rows(documents.expand([full])):
        r.add(row, f"{source.name}:{line}", source.name)
    pairs, unpaired = r.finish()
    assert not unpaired and len(pairs) == (500 if path.endswith("zst") else 48)
    assert {p.subset for p in pairs} == {"fcc_amateur_extra", "cissp-study-questions"}
    assert all(p.chosen != p.rejected for p in pairs)
    assert len({p.key for p in pairs}) == len(pairs)  # one pair per question
