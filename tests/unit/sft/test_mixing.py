"""Mixing strategies give exact, reproducible per-source counts."""

from __future__ import annotations

import pytest

from llmctl.errors import UserError
from llmctl.sft import mixing


def test_proportional_caps_each_source():
    assert mixing.plan({"a": 1000, "b": 30}, max_examples=100) == {"a": 100, "b": 30}
    assert mixing.plan({"a": 1000, "b": 30}) == {"a": 1000, "b": 30}


def test_weights_split_the_total_exactly():
    got = mixing.plan(
        {"a": 10, "b": 10, "c": 10}, strategy="weights", weights={"a": 2, "b": 1, "c": 1}, total=9
    )
    assert sum(got.values()) == 9 and got["a"] > got["b"] >= 2
    with pytest.raises(UserError, match="no source named z"):
        mixing.plan({"a": 1}, strategy="weights", weights={"z": 1})


def test_temperature_flattens_toward_uniform():
    counts = {"big": 900, "small": 100}
    t1 = mixing.plan(counts, strategy="temperature", temperature=1.0)
    t2 = mixing.plan(counts, strategy="temperature", temperature=2.0)
    big = mixing.plan(counts, strategy="temperature", temperature=1000.0)
    assert t1 == {"big": 900, "small": 100}
    assert t2 == {"big": 750, "small": 250}  # sqrt(900) : sqrt(100) = 3 : 1
    assert abs(big["big"] - big["small"]) <= 4
    with pytest.raises(UserError, match="temperature"):
        mixing.plan(counts, strategy="temperature", temperature=0)


def test_draw_repeats_a_small_source_and_is_reproducible():
    pools = {"a": list(range(5)), "b": list(range(100, 150))}
    picked = mixing.draw(pools, {"a": 12, "b": 20}, seed=3)
    assert mixing.realised(picked) == {"a": 12, "b": 20}
    a = sorted(x for s, x in picked if s == "a")
    assert a.count(0) in (2, 3) and set(a) == set(range(5))  # two whole passes, then 2 more
    assert len({x for s, x in picked if s == "b"}) == 20  # no repeats while the pool lasts
    assert picked == mixing.draw(pools, {"a": 12, "b": 20}, seed=3)
    assert picked != mixing.draw(pools, {"a": 12, "b": 20}, seed=4)


def test_replay_is_the_asked_fraction_of_the_later_stage():
    earlier = list(range(1000))
    got = mixing.replay(earlier, 0.2, 400, seed=0)
    assert len(got) == 100  # 100 / (400 + 100) = 0.2
    assert set(got) <= set(earlier)
    assert mixing.replay(earlier, 0.0, 400, seed=0) == []
    with pytest.raises(UserError):
        mixing.replay(earlier, 1.0, 400, seed=0)
