"""Phone numbers written by hand from real formats (tests/assets/pii/phones-handwritten.jsonl),
not drawn through the validator the scrubber uses: national and international, extensions,
(0) trunk prefixes, slashes, dots and dashes, for the default regions. Each must be replaced,
exactly its span (an extension after it is not a phone number and stays)."""

from __future__ import annotations

import json

import pytest

from llmctl.clean.config import PII_TYPES, PiiConfig
from llmctl.clean.pii import PLACEHOLDER, Scrubber
from tests.conftest import ASSETS

PHONES = [json.loads(x) for x in (ASSETS / "pii" / "phones-handwritten.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def scrub() -> Scrubber:
    return Scrubber(PII_TYPES, PiiConfig().phone_regions)


def test_the_set_is_varied():
    assert len(PHONES) >= 20
    assert sum(p["value"].startswith(("+", "00")) for p in PHONES) >= 10  # international
    assert sum(not p["value"].startswith(("+", "00")) for p in PHONES) >= 10  # national
    assert sum("ext" in p["format"] for p in PHONES) >= 3


@pytest.mark.parametrize("item", PHONES, ids=lambda p: p["value"])
def test_every_handwritten_phone_is_replaced(scrub, item):
    out, counts = scrub(item["text"])
    assert out == item["text"].replace(item["value"], PLACEHOLDER["phone"]), item["format"]
    assert dict(counts) == {"phone": 1}
