"""dedup's filter step reuses step 1's hashes: the outputs equal the re-read, re-hashed way.

The n-gram index takes step 1's n-gram hashes, only documents holding a boilerplate line are split
again, and `NgramIndex.add` sets bits one bit value at a time: each is checked here against the
straightforward definition it replaced (the text of every kept document, hashed again).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from llmctl import config
from llmctl.dedup import DedupConfig, run
from llmctl.dedup.signatures import line_key, unit_texts
from llmctl.dedup.stage import _strip_boilerplate
from llmctl.formats.documents import read_shards
from llmctl.formats.ngrams import NgramIndex, text_ngrams
from tests.fixtures import corpus

FOOTER = "Subscribe to our newsletter for more updates from the editors."
NAV = "Home | News | Sports | Weather | Contact the newsroom today"


def reference_strip(text: str, boiler: set[int], unit: str, min_chars: int) -> tuple[str, int]:
    """Line removal as the filter did it before: every unit of every document hashed again."""
    parts = unit_texts(text, unit) if unit == "paragraph" else text.split("\n")
    keep = [p for p in parts if len(p.strip()) < min_chars or line_key(p.strip()) not in boiler]
    return ("\n\n" if unit == "paragraph" else "\n").join(keep), len(parts) - len(keep)


def reference_add(index: NgramIndex, h: np.ndarray) -> None:
    """NgramIndex.add as it was: np.bitwise_or.at over every position."""
    pos = index._positions(h)
    bits = (1 << (pos & np.uint64(7))).astype(np.uint8)
    np.bitwise_or.at(index.array, (pos >> np.uint64(3)).astype(np.int64), bits)


def test_index_add_equals_bitwise_or_at():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=5000, dtype=np.uint64)
    h = np.concatenate([h, h[:100]])  # repeated n-grams, and many positions sharing a byte
    fast, ref = NgramIndex(2000, 1e-2, 13), NgramIndex(2000, 1e-2, 13)
    fast.add(h[:3000], chunk=1000)
    fast.add(h[3000:])
    fast.add(h[:0])
    reference_add(ref, h)
    assert fast.array.tobytes() == ref.array.tobytes() and ref.array.any()


@pytest.mark.parametrize("unit", ["line", "paragraph"])
def test_strip_boilerplate_equals_reference(unit):
    cfg = config.load(DedupConfig, None, [f"lines.unit={unit}"])
    sep = "\n\n" if unit == "paragraph" else "\n"
    text = sep.join([f"  {NAV} ", "A body line that stays in place.", "short", FOOTER, f"{NAV.upper()}\t"])
    boiler = {line_key(NAV), line_key(FOOTER), line_key("something else entirely")}
    table = np.array(sorted(boiler), dtype=np.uint64)
    got = _strip_boilerplate(text, table, cfg)
    assert got == reference_strip(text, boiler, unit, cfg.lines.min_chars) and got[1] == 3
    # no unit of the text in the table (step 1 knows): the text as the full pass would give it
    plain = sep.join(["  first unit of a plain text ", "second unit of it"])
    assert _strip_boilerplate(plain, table, cfg, hit=False) == reference_strip(plain, boiler, unit, 10)


@pytest.mark.parametrize("unit", ["line", "paragraph"])
def test_outputs_equal_the_rehashing_filter(tmp_path, unit):
    """End to end: kept texts = reference stripping of the input; the index = the kept texts'."""
    rng = random.Random(3)
    passages = corpus.prose(14)
    sep = "\n\n" if unit == "paragraph" else "\n"
    src = tmp_path / "in.jsonl"
    docs = []
    for i, p in enumerate(passages):
        parts = [p] + [NAV] * (i % 3 > 0) + [FOOTER] * (i % 2)
        rng.shuffle(parts)
        docs.append({"id": f"d{i}", "text": sep.join(parts)})
    docs.append({"id": "short", "text": sep.join([NAV, FOOTER, "Thanks."])})
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    sets = [f"lines.unit={unit}", "lines.min_docs=4", "minhash.enabled=false", "workers=1"]
    cfg = config.load(DedupConfig, None, sets)
    m = run(config.with_run(cfg, inputs=[src], out=tmp_path / "out"))
    boiler = {line_key(NAV), line_key(FOOTER)}
    assert m.metrics["boilerplate_lines"] == 2
    kept = list(read_shards(tmp_path / "out" / "data"))
    expect = {d["id"]: reference_strip(d["text"], boiler, unit, 10) for d in docs}
    assert [r["id"] for r in kept] == [f"d{i}" for i in range(14)]
    for r in kept:
        assert r["text"] == expect[r["id"]][0]
        assert r["meta"].get("boilerplate_removed", 0) == expect[r["id"]][1]
    assert m.metrics["lines_removed"] == sum(n for _, n in expect.values())
    index = NgramIndex.load(tmp_path / "out")
    ref = NgramIndex(1, cfg.contamination.index_false_positive_rate, 13)
    ref.array = np.zeros_like(index.array)
    ref.bits, ref.k = index.bits, index.k
    for r in kept:
        reference_add(ref, text_ngrams(r["text"], 13))
    assert index.array.tobytes() == ref.array.tobytes() and index.array.any()
    assert m.metrics["step_seconds"].keys() >= {"signatures", "filter", "boilerplate", "index"}
