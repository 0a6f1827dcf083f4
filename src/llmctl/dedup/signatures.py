"""Step 1 of `llmctl dedup`: one pass over the documents computing, per document, the exact
hash of its normalized text, its datasketch MinHash signature, the hashes of its distinct
lines (for boilerplate counting) and its contamination hits against the evaluation sets.

Words are hashed once with a stable hash (crc32, the same in every process) and combined into
n-gram shingle hashes with numpy (`llmctl.formats.ngrams`, shared with eval's contamination
check); datasketch's MinHash applies the permutations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash

from llmctl.dedup.config import DedupConfig
from llmctl.formats.documents import Document, Malformed
from llmctl.formats.ngrams import ngram_hashes, stable_hash64, word_hashes, words

_PARAGRAPH = re.compile(r"\n\s*\n")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def unit_texts(text: str, unit: str) -> list[str]:
    parts = text.split("\n") if unit == "line" else _PARAGRAPH.split(text)
    return [p.strip() for p in parts]


def line_key(part: str) -> int:
    """Lines compare case- and whitespace-insensitively."""
    return stable_hash64(" ".join(part.lower().split()).encode())


@dataclass
class DocSig:
    """What step 1 keeps of one document (no text)."""

    exact: int  # 64-bit hash of the normalized text; 0 for an unreadable record
    signature: np.ndarray | None  # MinHash hash values, None when the document has no words
    lines: np.ndarray  # distinct boilerplate-candidate line hashes
    n_words: int = 0
    contaminated: dict[str, np.ndarray] = field(default_factory=dict)  # eval set -> shared n-gram hashes
    # the contamination-length n-gram hashes (max(0, n_words - n + 1), in text order) when the index
    # is written: the filter step adds them to the index instead of re-reading and re-hashing the text
    grams: np.ndarray | None = None


class Signer:
    def __init__(self, cfg: DedupConfig, eval_ngrams: dict[str, np.ndarray] | None = None):
        self.cfg = cfg
        template = MinHash(num_perm=cfg.minhash.num_perm, seed=cfg.minhash.seed)
        self.permutations = template.permutations
        self.scheme = template.scheme
        self.empty = template.hashvalues
        self.eval_ngrams = eval_ngrams or {}

    def minhash(self, shingles: np.ndarray) -> np.ndarray:
        m = MinHash(
            num_perm=self.cfg.minhash.num_perm,
            permutations=self.permutations,
            scheme=self.scheme,
            hashfunc=int,  # the shingles are already 32-bit hashes
        )
        m.update_batch((shingles >> np.uint64(32)).tolist())
        return m.hashvalues

    def __call__(self, item: Document | Malformed) -> DocSig:
        cfg = self.cfg
        if isinstance(item, Malformed):
            return DocSig(0, None, np.zeros(0, dtype=np.uint64))
        ws = words(item.text)
        exact = stable_hash64(" ".join(ws).encode()) or 1
        wh = word_hashes(ws)
        sig = None
        if cfg.minhash.enabled and ws:
            n = min(cfg.minhash.ngram, len(ws))  # a document shorter than n is one shingle
            sig = self.minhash(np.unique(ngram_hashes(wh, n)))
        lines = np.zeros(0, dtype=np.uint64)
        if cfg.lines.enabled:
            keys = {
                line_key(p) for p in unit_texts(item.text, cfg.lines.unit) if len(p) >= cfg.lines.min_chars
            }
            lines = np.array(sorted(keys), dtype=np.uint64)
        hits = {}
        grams = None
        if self.eval_ngrams or cfg.contamination.index:
            grams = ngram_hashes(wh, cfg.contamination.ngram)
        if self.eval_ngrams:
            for name, table in self.eval_ngrams.items():
                shared = grams[np.isin(grams, table)]
                if len(shared):
                    hits[name] = np.unique(shared)
        return DocSig(exact, sig, lines, len(ws), hits, grams if cfg.contamination.index else None)
