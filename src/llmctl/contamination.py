"""Contamination through a model's whole lineage: every training stage records an n-gram index of
the text it trained on, and eval checks each test item against every index upstream of a model.

    from llmctl import contamination
    contamination.record_index(staging, ["a training text", ...])      # sft, rm, dpo, ppo
    sources = contamination.lineage_indexes(Path("runs/demo/ppo"))      # every index upstream
    hits = contamination.check(sources, ["an eval item's text", ...])   # [[stage labels], ...]

The index is dedup's (`llmctl.formats.ngrams.NgramIndex`: a Bloom filter of 13-word n-grams,
`ngram_index.{npy,json}` at the artifact's root), so one reader serves the pre-training data's
index and the post-training stages' alike. Each training example's n-grams are added on their own:
an n-gram that only straddles two examples was never a text the model saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.formats.ngrams import INDEX, NgramIndex, text_ngrams

NGRAM = 13  # dedup's default (contamination.ngram): eval items are checked at one length
FALSE_POSITIVE_RATE = 1e-4  # dedup's default (contamination.index_false_positive_rate)
MAX_ARTIFACTS = 10_000  # artifacts visited in one lineage (lineage.MAX_NODES)


def record_index(
    directory: Path, texts: Iterable[str], *, ngram: int = NGRAM, fp_rate: float = FALSE_POSITIVE_RATE
) -> dict[str, int]:
    """Write `directory/ngram_index.{npy,json}` over `texts` (each text's n-grams apart); returns
    {"texts", "ngrams"} for the stage's metrics. The filter is sized for the n-grams counted."""
    hashes = [text_ngrams(t, ngram) for t in texts if t]
    total = sum(len(h) for h in hashes)
    index = NgramIndex(total, fp_rate, ngram)
    for h in hashes:
        index.add(h)
    directory.mkdir(parents=True, exist_ok=True)
    index.save(directory)
    return {"texts": len(hashes), "ngrams": total}


def messages_text(messages: Any) -> str:
    """The text of a conversation (a list of {"role", "content"}) or a plain string: the turns'
    contents joined by newlines, as a test item quoting a prompt and its answer would read."""
    if isinstance(messages, str):
        return messages
    return "\n".join(str(m.get("content", "")) for m in messages or [] if isinstance(m, dict))


def pair_texts(pairs: Iterable[Any]) -> Iterable[str]:
    """The two texts of each preference pair (prompt + chosen, prompt + rejected): both were read
    in training. A pair is an `llmctl.rm.data.Pair` or a dict with the same three keys."""
    for p in pairs:
        get = p.get if isinstance(p, dict) else lambda k, p=p: getattr(p, k)
        prompt = messages_text(get("prompt"))
        for side in ("chosen", "rejected"):
            yield prompt + "\n" + messages_text(get(side))


@dataclass
class Source:
    """One n-gram index found in a model's lineage: the artifact holding it and its stage."""

    path: Path
    stage: str
    label: str = ""  # the stage's name, or stage:DIR when two artifacts of one stage hold indexes
    _index: NgramIndex | None = None

    def describe(self) -> dict[str, str]:
        return {"label": self.label, "stage": self.stage, "path": str(self.path)}

    @property
    def index(self) -> NgramIndex:
        """The Bloom filter, loaded on first use and kept (one load per eval, however many tasks)."""
        if self._index is None:
            self._index = NgramIndex.load(self.path)
        return self._index


def lineage_indexes(root: Path | None) -> list[Source]:
    """Every artifact upstream of (and including) `root` that holds an n-gram index, nearest first
    (breadth first over the manifests' recorded inputs; each artifact once, whatever the diamonds)."""
    from llmctl import artifacts
    from llmctl.artifacts import Manifest

    found: list[Source] = []
    seen: set[Path] = set()
    queue = [root] if root is not None else []
    while queue and len(seen) < MAX_ARTIFACTS:
        a = queue.pop(0)
        key = a.resolve()
        if key in seen or not artifacts.is_complete(a):
            continue
        seen.add(key)
        m = Manifest.read(a)
        if (a / INDEX).is_file():
            found.append(Source(key, m.stage or "artifact"))
        for entry in m.inputs:
            if entry.get("kind") == "artifact":
                queue.append(artifacts.resolve_input(entry, a))
    return label_sources(found)


def label_sources(sources: list[Source]) -> list[Source]:
    """Label each source by its stage; stage:DIR where one stage holds more than one index."""
    stages = [s.stage for s in sources]
    for s in sources:
        s.label = s.stage if stages.count(s.stage) == 1 else f"{s.stage}:{s.path.name}"
    return sources


def check(sources: list[Source], texts: list[str]) -> list[list[str]]:
    """For each text, the labels of the sources whose index holds one of its n-grams (in the order
    of `sources`); [] = clean."""
    hits: list[list[str]] = [[] for _ in texts]
    for s in sources:
        for i, t in enumerate(texts):
            if s.index.contains_text(t):
                hits[i].append(s.label)
    return hits


def summary(items: list[Any], hits: list[list[str]]) -> dict[str, Any]:
    """Per task: contaminated items counted per stage (an item may be in several stages' data),
    and each contaminated item (index, FILE:LINE, stages)."""
    stages = dict.fromkeys(s for h in hits for s in h)
    return {
        "contaminated_by": {s: sum(s in h for h in hits) for s in stages},
        "contaminated_items": [
            {"index": it.index, "where": it.where, "from": h} for it, h in zip(items, hits, strict=True) if h
        ],
    }


def report_lines(label: str, task: str, score: dict[str, Any], limit: int = 20) -> list[str]:
    """report.md's list of one model and task's contaminated items, with the stages they came from."""
    rows = score.get("contaminated_items") or []
    lines = [
        f"- {label} · {task} · item {r['index']} ({Path(r['where']).name}): {', '.join(r['from'])}"
        for r in rows[:limit]
    ]
    if len(rows) > limit:
        lines.append(f"- {label} · {task}: {len(rows) - limit} more in items/{label}/{task}.jsonl")
    return lines


def given_index(path: Path) -> Source:
    """--contamination-index DIR as a source (its stage from its manifest when it is an artifact)."""
    from llmctl import artifacts
    from llmctl.artifacts import Manifest

    stage = Manifest.read(path).stage if artifacts.is_complete(path) else "index"
    return label_sources([Source(path, stage or "index")])[0]
