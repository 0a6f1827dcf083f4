"""clean's built-in defaults on a labelled set nobody tuned the rules on, and privacy in every file.

The calibration set (tests/assets/clean/, built by scripts/make_clean_calibration.py from the
Debian Administrator's Handbook and Moby-Dick) holds clean English at four granularities, ten
other languages and six kinds of junk.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
import zstandard

from llmctl import config
from llmctl.clean.config import CleanConfig
from llmctl.clean.pipeline import Processor
from llmctl.formats.documents import Document, read_shards
from tests.conftest import ASSETS, REPO, llmctl

CALIBRATION = ASSETS / "clean" / "calibration.jsonl.zst"


@pytest.fixture(scope="module")
def calibration() -> list[dict]:
    data = zstandard.ZstdDecompressor().stream_reader(open(CALIBRATION, "rb")).read()
    return [json.loads(line) for line in data.splitlines()]


def decisions(cfg: CleanConfig, recs: list[dict]) -> dict[tuple[str, str], Counter[str]]:
    """(label, granularity or junk kind) -> reasons, 'kept' for kept documents."""
    proc = Processor(cfg, REPO / "recipes" / "clean")
    out: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for r in recs:
        meta = r["meta"]
        reason = proc.document(Document(r["id"], r["text"], {}))[0]
        group = meta["kind"] if meta["label"] == "junk" else meta["granularity"]
        out[(meta["label"], group)][reason or "kept"] += 1
    return out


def test_defaults_keep_clean_prose_at_every_granularity_and_reject_junk(calibration):
    seen = decisions(CleanConfig(), calibration)
    groups = {k: sum(c.values()) for k, c in seen.items()}
    assert groups == {
        ("clean", "paragraph"): 300,
        ("clean", "section"): 80,
        ("clean", "page"): 30,
        ("clean", "chapter"): 30,
        ("foreign", "paragraph"): 120,
        ("foreign", "section"): 80,
        **{("junk", kind): 30 for kind in ("menu", "lorem", "symbols", "repeated", "three_words", "notice")},
    }
    for (label, group), reasons in seen.items():
        kept = reasons["kept"] / sum(reasons.values())
        if label == "clean":
            assert kept >= 0.95, (group, reasons)
        else:
            assert 1 - kept >= 0.95, (label, group, reasons)
    foreign = sum((c for (label, _), c in seen.items() if label == "foreign"), Counter())
    assert foreign["language"] / sum(foreign.values()) >= 0.95


def test_datatrove_exact_rules_reject_the_paragraphs_the_defaults_keep(calibration):
    """The shipped datatrove recipe is still the paper's rules: most single paragraphs fail them."""
    strict = config.load(CleanConfig, REPO / "recipes" / "clean" / "c4-strict.yaml")
    paragraphs = [
        r for r in calibration if r["meta"]["label"] == "clean" and r["meta"]["granularity"] == "paragraph"
    ]
    seen = decisions(strict, paragraphs)[("clean", "paragraph")]
    assert seen["kept"] / 300 < 0.6
    assert seen["c4_too_few_sentences"] > 50


PII = {
    "email": "jane.doe@example.com",
    "phone": "+1 202-555-0143",
    "ip": "203.0.113.7",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ssn": "078-05-1120",
    "secret": "AKIAIOSFODNN7EXAMPLE",
}
PLANTED = (
    f" Write to {PII['email']} or call {PII['phone']} from {PII['ip']}; card {PII['card']}, "
    f"IBAN {PII['iban']}, SSN {PII['ssn']}, key {PII['secret']}."
)


def planted_corpus(calibration: list[dict]) -> list[str]:
    """One document per rejection reason (and kept ones), each carrying every kind of PII."""
    by = defaultdict(list)
    for r in calibration:
        by[(r["meta"]["label"], r["meta"]["kind"], r["meta"]["granularity"])].append(r["text"])
    prose = by[("clean", "prose", "paragraph")]
    docs = {
        "kept": prose[0] + PLANTED,
        "language": by[("foreign", "prose", "paragraph")][0] + PLANTED,
        "gopher_short_doc": " ".join(prose[6].split()[:12]) + PLANTED,
        "dup_line_frac": "\n".join(["Buy now and save big on every order you place with us today."] * 30)
        + PLANTED,
        "c4_lorem_ipsum": prose[1] + "\nLorem ipsum dolor sit amet, consectetur." + PLANTED,
        "c4_curly_bracket": prose[2]
        + PLANTED
        + "\n"
        + "\n".join(f"int f{i}() {{ if (x) {{ return y; }} }}" for i in range(9)),
        "blocked_keywords": prose[3] + PLANTED + " viagra viagra online casino viagra.",
        "blocked_domain": prose[4] + PLANTED + " More at https://www.spam.example/offer today.",
        "too_long": prose[5] + PLANTED + " " + "filler words " * 4000,
    }
    lines = [json.dumps({"id": k, "text": v}) for k, v in docs.items()]
    lines.append('{"id": "broken", "text": "unterminated' + PLANTED)  # malformed: the raw line is the text
    return lines


@pytest.fixture(scope="module")
def planted(calibration, tmp_path_factory):
    """A clean artifact of the planted corpus, with the demo recipe (blocklists on), English only."""
    tmp = tmp_path_factory.mktemp("planted")
    src = tmp / "in.jsonl"
    src.write_text("\n".join(planted_corpus(calibration)) + "\n", encoding="utf-8")
    out = tmp / "out"
    r = llmctl(
        "clean", str(src), "--out", str(out), "--config", str(REPO / "recipes/clean/default.yaml"),
        "--set", "language.languages=[en]", "--set", "max_doc_chars=40000",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_personal_data_is_gone_from_every_file_of_the_artifact(planted):
    out = planted
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    reasons = {"language", "gopher_short_doc", "dup_line_frac", "c4_lorem_ipsum", "c4_curly_bracket"}
    reasons |= {"blocked_keywords", "blocked_domain", "too_long", "malformed"}
    assert m["rejected"] == dict.fromkeys(sorted(reasons), 1) and m["kept_docs"] == 1
    assert m["pii_replaced"] == dict.fromkeys(sorted(PII), 1)
    # each of the 9 rejected documents had the seven values
    assert m["pii_replaced_rejected"] == dict.fromkeys(sorted(PII), 9)
    rejected = {rec["id"]: rec for rec in read_shards(out / "rejected")}
    broken = next(rec for rec in rejected.values() if rec["reason"] == "malformed")
    assert "unterminated" in broken["text"] and "<EMAIL>" in broken["text"]
    assert rejected["language"]["meta"]["language"] != "en"  # metadata kept with the reason
    every_file = [f for f in out.rglob("*") if f.is_file()]
    assert {f.name for f in every_file} >= {"manifest.json", "report.md", "part-00000.jsonl.zst"}
    for f in every_file:
        raw = f.read_bytes()
        text = zstandard.ZstdDecompressor().stream_reader(raw).read() if f.suffix == ".zst" else raw
        for kind, value in PII.items():
            assert value.encode() not in text, f"{kind} {value!r} left in {f.relative_to(out)}"


def test_report_explains_every_rule_and_inspect_reasons_shows_it(planted):
    out = planted
    m = json.loads((out / "manifest.json").read_text())
    assert "report.md" in {o["path"] for o in m["outputs"]}
    report = (out / "report.md").read_text()
    assert "10 input documents: 1 kept (10.0%), 9 rejected." in report
    rows = {line.split(" | ")[0].strip("| "): line for line in report.splitlines() if line.startswith("| ")}
    for reason, n in m["metrics"]["rejected"].items():
        assert f"| {reason} | {n} |" in rows[reason]
        shown = rows[reason].split(" | ")[-1]
        assert shown.startswith("“") and shown.count("” / “") == min(n, 2) - 1  # one excerpt per document
    assert "| email | 1 | 9 |" in report  # in kept / in rejected documents
    assert "jane.doe" not in report
    shown = llmctl("inspect", str(out), "--reasons")
    assert shown.returncode == 0 and shown.stdout == report
