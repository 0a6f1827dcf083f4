"""Per-document processing of `llmctl clean`: transforms, then filters in a fixed order.

    html -> normalize -> language -> gopher quality -> gopher repetition -> c4 -> keywords -> pii

A document leaves either kept (its text transformed, its meta enriched) or rejected with the
reason of the first filter that dropped it. Workers receive chunks of documents and return
the serialized output lines, so the parent process only writes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.clean import heuristics
from llmctl.clean.config import CleanConfig
from llmctl.clean.pii import Scrubber
from llmctl.clean.text import Blocklist, LanguageId, html_to_text, looks_like_html, normalize
from llmctl.formats.documents import Document, Malformed, dumps, malformed_record
from llmctl.rejections import EXAMPLES, excerpt


@dataclass
class ChunkResult:
    """What a worker returns for one chunk: output lines and the chunk's accounting."""

    kept: list[bytes] = field(default_factory=list)
    rejected: list[bytes] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    examples: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    pii: Counter[str] = field(default_factory=Counter)
    pii_rejected: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    input_docs: int = 0
    input_bytes: int = 0
    kept_bytes: int = 0
    html_docs: int = 0
    first_malformed: Malformed | None = None


class Processor:
    def __init__(self, cfg: CleanConfig, recipe_dir: Path | None = None):
        self.cfg = cfg
        self.lang = LanguageId(cfg.language) if cfg.language.enabled else None
        self.blocklist = Blocklist(cfg.keywords, recipe_dir) if cfg.keywords.enabled else None
        self.scrub = Scrubber(cfg.pii.types, cfg.pii.phone_regions) if cfg.pii.enabled else None
        self.spacy = None
        if cfg.word_tokenizer == "spacy" and (
            cfg.quality.enabled or cfg.repetition.enabled or cfg.c4.enabled
        ):
            from llmctl.clean.spacy_words import SpacyWords

            self.spacy = SpacyWords("word_tokenizer")

    def document(self, doc: Document) -> tuple[str | None, Document, Counter[str], bool]:
        """(reason or None, output document, pii counts, was_html)."""
        cfg = self.cfg
        text = doc.text
        meta = dict(doc.meta)
        pii: Counter[str] = Counter()
        was_html = False
        if len(text) > cfg.max_doc_chars:
            return "too_long", doc, pii, was_html
        if cfg.html.enabled and looks_like_html(text):
            text = html_to_text(text, cfg.html)
            was_html = True
            meta["html_extracted"] = True
        if cfg.normalize.enabled:
            text = normalize(text, cfg.normalize)
        if not text.strip():
            return "empty", doc, pii, was_html
        if self.lang is not None:
            lang, score = self.lang(text)
            meta["language"], meta["language_score"] = lang, round(score, 4)
            if lang not in self.lang.keep or score < cfg.language.min_score:
                return "language", Document(doc.id, doc.text, meta), pii, was_html
        if cfg.quality.enabled or cfg.repetition.enabled:
            words = self.spacy.words(text) if self.spacy else heuristics.Words.of(text)
            if cfg.quality.enabled and (
                reason := heuristics.gopher_quality(text, words, cfg.quality, meta.get("language", "en"))
            ):
                return reason, Document(doc.id, doc.text, meta), pii, was_html
            if cfg.repetition.enabled and (
                reason := heuristics.gopher_repetition(text, words, cfg.repetition)
            ):
                return reason, Document(doc.id, doc.text, meta), pii, was_html
        if cfg.c4.enabled:
            reason, text = heuristics.c4_lines(text, cfg.c4, self.spacy.sentences if self.spacy else None)
            if reason:
                return f"c4_{reason}", Document(doc.id, doc.text, meta), pii, was_html
        if self.blocklist is not None and (reason := self.blocklist(text)):
            return reason, Document(doc.id, doc.text, meta), pii, was_html
        if self.scrub is not None:
            text, pii = self.scrub(text)
            if pii:
                meta["pii"] = dict(sorted(pii.items()))
        return None, Document(doc.id, text, meta), pii, was_html

    def rejected(self, record: dict[str, Any], res: ChunkResult) -> None:
        """A rejected record as written: its text scrubbed like a kept one (privacy reduction
        covers every file of the artifact), its reason counted, an excerpt kept for report.md."""
        reason = record["reason"]
        if self.scrub is not None and record["text"]:
            record["text"], pii = self.scrub(record["text"])
            res.pii_rejected.update(pii)
        res.reasons[reason] += 1
        if len(res.examples[reason]) < EXAMPLES:
            res.examples[reason].append(excerpt(record["text"]))
        res.rejected.append(dumps(record))

    def chunk(self, items: list[Document | Malformed]) -> ChunkResult:
        res = ChunkResult()
        for item in items:
            res.input_docs += 1
            if isinstance(item, Malformed):
                res.first_malformed = res.first_malformed or item
                self.rejected(malformed_record(item), res)
                continue
            res.input_bytes += len(item.text.encode("utf-8", errors="surrogatepass"))
            reason, out, pii, was_html = self.document(item)
            res.html_docs += was_html
            if "language" in out.meta:
                res.languages[out.meta["language"]] += 1
            if reason is None:
                res.pii.update(pii)
                line = dumps(out.to_dict())
                res.kept_bytes += len(line)
                res.kept.append(line)
            else:
                self.rejected({**out.to_dict(), "reason": reason}, res)
        return res


# ---------------------------------------------------------------- worker processes

# Built once in the parent (so a bad config or unreadable blocklist fails there, with a clear
# message) and inherited by the forked workers.
_processor: Processor | None = None


def prepare(cfg: CleanConfig, recipe_dir: Path | None) -> None:
    global _processor
    _processor = Processor(cfg, recipe_dir)


def work(items: list[Document | Malformed]) -> ChunkResult:
    assert _processor is not None, "prepare() was not called"
    return _processor.chunk(items)
