"""Privacy reduction measured on the labelled set in tests/assets/pii/ (positives + hard negatives)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from llmctl.clean.config import PII_TYPES, PiiConfig
from llmctl.clean.pii import PLACEHOLDER, Scrubber, iban_ok, luhn_ok
from tests.conftest import ASSETS

ITEMS = [json.loads(line) for line in (ASSETS / "pii" / "labelled.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def scores():
    scrub = Scrubber(PII_TYPES, PiiConfig().phone_regions)
    expected, hit, false_pos = Counter(), Counter(), 0
    leaked, changed_negatives = [], []
    for item in ITEMS:
        out, counts = scrub(item["text"])
        want = Counter(p["type"] for p in item["pii"])
        for t in PII_TYPES:
            expected[t] += want[t]
            hit[t] += min(counts[t], want[t])
            false_pos += max(0, counts[t] - want[t])
        for p in item["pii"]:
            if p["value"] in out:
                leaked.append(p)
        if not item["pii"] and out != item["text"]:
            changed_negatives.append((item["text"], out))
    return expected, hit, false_pos, leaked, changed_negatives


def test_the_set_covers_every_type_and_has_hard_negatives():
    kinds = Counter(p["type"] for it in ITEMS for p in it["pii"])
    assert set(kinds) == set(PII_TYPES) and min(kinds.values()) >= 30
    assert sum(1 for it in ITEMS if not it["pii"]) >= 40


@pytest.mark.parametrize(
    "kind,floor",
    [
        ("email", 0.95),
        ("ip", 0.95),
        ("card", 0.95),
        ("phone", 0.90),
        ("iban", 0.90),
        ("ssn", 0.90),
        ("secret", 0.90),
    ],
)
def test_recall(scores, kind, floor):
    expected, hit, *_ = scores
    assert hit[kind] / expected[kind] >= floor, f"{kind}: {hit[kind]}/{expected[kind]}"


def test_precision_and_negatives_untouched(scores):
    expected, hit, false_pos, leaked, changed = scores
    tp = sum(hit.values())
    assert tp / (tp + false_pos) >= 0.95
    assert changed == [], changed[:3]
    assert len(leaked) <= 0.05 * sum(expected.values())


def test_placeholders_and_counts():
    scrub = Scrubber(PII_TYPES, ["US"])
    out, counts = scrub("Mail bob@example.org, card 4111 1111 1111 1111, host 192.0.2.10 on 2024-01-15.")
    assert (
        out
        == f"Mail {PLACEHOLDER['email']}, card {PLACEHOLDER['card']}, host {PLACEHOLDER['ip']} on 2024-01-15."
    )
    assert counts == Counter({"email": 1, "card": 1, "ip": 1})


def test_only_enabled_types_are_replaced():
    out, counts = Scrubber(["email"], ["US"])("bob@example.org from 192.0.2.10")
    assert out == "<EMAIL> from 192.0.2.10" and counts == Counter({"email": 1})


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert not iban_ok("DE89 3704 0044 0532 0130")  # wrong length for DE
