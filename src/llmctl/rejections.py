"""Why a data stage rejected what it rejected: counts per rule, short excerpts, personal data replaced.

    llmctl inspect runs/demo/clean --reasons     # report.md of the artifact, or built from rejected/

`llmctl clean` writes this as `report.md` into its artifact (excerpts come from the rejected
records as written, so they are already scrubbed of personal data); `inspect --reasons` prints it,
or builds the same report for any artifact with a `rejected/` directory (dedup's, an older clean's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

EXAMPLES = 2
"""Excerpts shown per rule."""
EXCERPT_CHARS = 160


def excerpt(text: str) -> str:
    """The opening of a document on one line, at most EXCERPT_CHARS characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


def merge_examples(into: dict[str, list[str]], more: Mapping[str, Iterable[str]]) -> None:
    """Add excerpts in order, keeping the first EXAMPLES of each rule."""
    for reason, items in more.items():
        have = into.setdefault(reason, [])
        for item in items:
            if len(have) >= EXAMPLES:
                break
            have.append(item)


def scan(
    rejected_dir: Path, want: Iterable[str] | None = None
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Counts and first excerpts per reason, read from a rejected/ directory. With `want`, reading
    stops as soon as every wanted reason has its excerpts (counts are then partial)."""
    from llmctl.formats.documents import read_shards

    wanted = set(want) if want is not None else None
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    if not rejected_dir.is_dir():
        return counts, examples
    for rec in read_shards(rejected_dir):
        reason = str(rec.get("reason", "unknown"))
        counts[reason] = counts.get(reason, 0) + 1
        merge_examples(examples, {reason: [excerpt(rec.get("text", ""))]})
        if wanted is not None and all(len(examples.get(r, [])) >= EXAMPLES for r in wanted):
            break
    return counts, examples


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def render(
    title: str,
    metrics: Mapping[str, Any],
    rejected: Mapping[str, int],
    examples: Mapping[str, list[str]],
    pii: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """report.md: the accounting, one row per rule (most frequent first) with its excerpts, and the
    personal data replaced per type and place."""
    n_in = int(metrics.get("input_docs", 0)) or sum(rejected.values())
    kept = metrics.get("kept_docs")
    lines = [f"# {title}", ""]
    if kept is not None:
        lines += [
            f"{n_in:,} input documents: {kept:,} kept ({kept / max(1, n_in):.1%}), "
            f"{sum(rejected.values()):,} rejected.",
            "",
        ]
    lines += ["## Rejected, by rule", ""]
    if not rejected:
        lines += ["Nothing was rejected.", ""]
    else:
        lines += ["| rule | documents | share of input | examples |", "|---|---:|---:|---|"]
        for reason, n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
            shown = " / ".join(f"“{_escape(e)}”" for e in examples.get(reason, [])[:EXAMPLES])
            lines.append(f"| {reason} | {n:,} | {n / max(1, n_in):.1%} | {shown} |")
        lines.append("")
    if pii is not None:
        lines += ["## Personal data replaced", ""]
        places = list(pii)
        types = sorted({t for counts in pii.values() for t in counts})
        if not types:
            lines += ["None found.", ""]
        else:
            lines += ["| type | " + " | ".join(places) + " |", "|---|" + "---:|" * len(places)]
            for t in types:
                lines.append(f"| {t} | " + " | ".join(f"{pii[p].get(t, 0):,}" for p in places) + " |")
            lines.append("")
    return "\n".join(lines)


def for_artifact(directory: Path) -> str:
    """The report of an existing artifact: its report.md when it wrote one, else built from its
    manifest and rejected/ records."""
    from llmctl.artifacts import Manifest

    report = directory / "report.md"
    m = Manifest.read(directory)
    if m.stage == "clean" and report.is_file():
        return report.read_text(encoding="utf-8")
    counts, examples = scan(directory / "rejected")
    recorded = m.metrics.get("rejected")
    rejected = recorded if isinstance(recorded, dict) and recorded else counts
    return render(f"{m.stage} report", m.metrics, rejected, examples)
