"""llmctl.contamination: the training-text n-gram index (dedup's Bloom format) and the walk that
finds every index upstream of a model, each item attributed to the stages whose data hold it."""

from __future__ import annotations

from pathlib import Path

from llmctl import artifacts, contamination
from llmctl.formats.ngrams import NgramIndex

QUOTE = "the quick brown fox jumps over the lazy dog while the farmer sleeps under an old oak tree"
OTHER = "a completely different sentence about rivers mountains clouds and the long winding roads of home"


def stage(out: Path, name: str, inputs: list[Path], texts: list[str] | None) -> Path:
    run = artifacts.begin(name, out, config={}, inputs=inputs)
    if texts is not None:
        contamination.record_index(run.staging, texts)
    run.commit({})
    return out


def test_record_index_is_dedups_format_and_keeps_examples_apart(tmp_path):
    half = QUOTE.split()
    texts = [" ".join(half[:9]), " ".join(half[9:])]  # the quote split across two examples
    got = contamination.record_index(tmp_path, [QUOTE, *texts, ""])
    assert got == {"texts": 3, "ngrams": len(QUOTE.split()) - 12}
    index = NgramIndex.load(tmp_path)  # the reader eval uses for dedup's index
    assert index.n == 13 and index.contains_text("Said: " + QUOTE.upper() + "!")
    assert not index.contains_text(OTHER)
    other = tmp_path / "o"
    contamination.record_index(other, texts)
    # an n-gram straddling two examples was never a text the model read
    assert not NgramIndex.load(other).contains_text(QUOTE)


def test_messages_and_pair_texts():
    msgs = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    assert contamination.messages_text(msgs) == "Q?\nA."
    assert contamination.messages_text("plain") == "plain"
    pair = {"prompt": msgs[:1], "chosen": [{"role": "assistant", "content": "yes"}], "rejected": "no"}
    assert list(contamination.pair_texts([pair])) == ["Q?\nyes", "Q?\nno"]


def test_lineage_walk_finds_every_index_and_attributes_items(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("x\n")
    dd = stage(tmp_path / "dd", "dedup", [raw], [OTHER])
    pre = stage(tmp_path / "pre", "pretrain", [dd], None)  # no index of its own
    sft = stage(tmp_path / "sft", "sft", [pre, raw], [QUOTE])
    rm = stage(tmp_path / "rm", "rm", [sft], [QUOTE + " " + OTHER])
    ppo = stage(tmp_path / "ppo", "ppo", [sft, rm], ["just the prompts here"])  # a diamond via sft
    sources = contamination.lineage_indexes(ppo)
    assert [(s.label, s.path) for s in sources] == [
        ("ppo", ppo.resolve()),
        ("sft", sft.resolve()),
        ("rm", rm.resolve()),
        ("dedup", dd.resolve()),
    ]
    hits = contamination.check(sources, [QUOTE, OTHER, "nothing from training at all in this short item"])
    assert hits == [["sft", "rm"], ["rm", "dedup"], []]
    assert contamination.lineage_indexes(None) == []
    assert [s.label for s in contamination.lineage_indexes(pre)] == ["dedup"]


def test_summary_and_report_name_each_item_and_its_stages():
    from types import SimpleNamespace as Item

    items = [Item(index=i, where=f"/x/t.jsonl:{i + 1}") for i in range(4)]
    s = contamination.summary(items, [["sft"], [], ["sft", "dedup"], []])
    assert s["contaminated_by"] == {"sft": 2, "dedup": 1}
    assert [(r["index"], r["from"]) for r in s["contaminated_items"]] == [(0, ["sft"]), (2, ["sft", "dedup"])]
    lines = contamination.report_lines("m", "t", s, limit=1)
    assert lines == ["- m · t · item 0 (t.jsonl:1): sft", "- m · t: 1 more in items/m/t.jsonl"]


def test_two_indexes_of_one_stage_are_told_apart(tmp_path):
    a = stage(tmp_path / "sft1", "sft", [], [QUOTE])
    b = stage(tmp_path / "sft2", "sft", [a], [OTHER])
    assert [s.label for s in contamination.lineage_indexes(b)] == ["sft:sft2", "sft:sft1"]
    assert contamination.given_index(a).label == "sft"
