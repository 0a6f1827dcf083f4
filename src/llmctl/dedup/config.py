"""Configuration of `llmctl dedup` (recipes/dedup/*.yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmctl.config import InputConfig, RunArgs, check


@dataclass
class ExactConfig:
    enabled: bool = True
    """Remove documents whose normalized text (case, whitespace, punctuation folded) repeats."""


@dataclass
class MinHashConfig:
    enabled: bool = True
    """Near-duplicate documents with datasketch MinHash + LSH."""
    ngram: int = 5
    """Word n-gram shingle size."""
    num_perm: int = 128
    """Permutations (hash functions) per signature."""
    threshold: float = 0.8
    """Jaccard similarity above which two documents are near-duplicates."""
    bands: int | None = None
    """LSH bands; derived with rows from the threshold (datasketch's optimum) when unset."""
    rows: int | None = None
    """Rows per band; bands * rows must not exceed num_perm."""
    verify: bool = True
    """Keep only LSH candidate pairs whose estimated Jaccard (signature agreement) reaches the
    threshold minus verify_margin."""
    verify_margin: float | None = None
    """Slack for the estimate's noise; unset = 1.5 standard deviations of the estimate at the
    threshold, sqrt(t(1-t)/num_perm) (0.053 at t=0.8, 128 permutations)."""
    seed: int = 1
    """Seed of the permutations: the same on every worker and shard."""

    def __post_init__(self) -> None:
        check(self.ngram >= 1, "minhash.ngram", "must be >= 1")
        check(16 <= self.num_perm <= 1024, "minhash.num_perm", "must be in [16, 1024]")
        check(0.0 < self.threshold < 1.0, "minhash.threshold", "must be in (0, 1)")
        check((self.bands is None) == (self.rows is None), "minhash.bands", "set bands and rows together")
        check(
            self.verify_margin is None or 0 <= self.verify_margin < self.threshold,
            "minhash.verify_margin",
            "must be in [0, threshold)",
        )
        if self.bands is not None and self.rows is not None:
            check(
                self.bands * self.rows <= self.num_perm, "minhash.bands", "bands * rows must be <= num_perm"
            )
            check(self.bands >= 1 and self.rows >= 1, "minhash.rows", "must be >= 1")

    def verify_threshold(self) -> float:
        margin = self.verify_margin
        if margin is None:
            margin = 1.5 * (self.threshold * (1 - self.threshold) / self.num_perm) ** 0.5
        return self.threshold - margin


@dataclass
class LineConfig:
    enabled: bool = True
    """Remove lines that repeat across many documents (boilerplate), CCNet-style."""
    unit: str = "line"
    """'line' or 'paragraph' (blank-line separated)."""
    min_docs: int = 3
    """A line is boilerplate when it occurs in at least this many documents ..."""
    min_doc_fraction: float = 0.0
    """... and in at least this fraction of all documents."""
    min_chars: int = 10
    """Shorter lines are never counted or removed (headings, blank lines, single words)."""
    min_words_after: int = 20
    """Documents left with fewer words after line removal are dropped."""

    def __post_init__(self) -> None:
        check(self.unit in ("line", "paragraph"), "lines.unit", "must be 'line' or 'paragraph'")
        check(self.min_docs >= 2, "lines.min_docs", "must be >= 2")


@dataclass
class ContaminationConfig:
    ngram: int = 13
    """Training documents sharing any n-gram (words) with an evaluation example are removed."""
    text_fields: list[str] = field(default_factory=lambda: ["text", "question", "prompt", "input", "context"])
    """Fields of an evaluation record whose text is checked (those present)."""
    index: bool = True
    """Write ngram_index.npz: a Bloom filter of the kept documents' n-grams for `llmctl eval`."""
    index_false_positive_rate: float = 1e-4
    """Target false-positive rate of that Bloom filter."""

    def __post_init__(self) -> None:
        check(self.ngram >= 3, "contamination.ngram", "must be >= 3")
        check(
            0 < self.index_false_positive_rate < 0.5, "contamination.index_false_positive_rate", "in (0, 0.5)"
        )


@dataclass
class DedupConfig:
    input: InputConfig = field(default_factory=InputConfig)
    """Input fields."""
    exact: ExactConfig = field(default_factory=ExactConfig)
    """Exact document duplicates."""
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    """Near-duplicate documents."""
    lines: LineConfig = field(default_factory=LineConfig)
    """Sentence/line-level boilerplate removal."""
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)
    """Set-level de-duplication against evaluation sets (--against)."""
    workers: int = 0
    """Worker processes; 0 = all cores."""
    chunk_size: int = 256
    """Documents per unit of work sent to a worker."""
    num_shards: int = 1
    """Split the input files into this many shards (SLURM array tasks) for the signature step."""
    shard_index: int = 0
    """Which shard this process runs."""
    max_memory: str = "16G"
    """Refuse to start when the estimated peak memory exceeds this (e.g. 512M, 16G)."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.workers >= 0, "workers", "must be >= 0 (0 = all cores)")
        check(self.num_shards >= 1, "num_shards", "must be >= 1")
        check(
            0 <= self.shard_index < self.num_shards, "shard_index", f"must be in [0, {self.num_shards - 1}]"
        )
        check(parse_size(self.max_memory) > 0, "max_memory", "use a size such as 512M or 16G")


def parse_size(text: str) -> int:
    """'512M' -> bytes; -1 when unreadable."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.I)
    if not m:
        return -1
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


# `llmctl dedup` options -> the config keys they set (the CLI sets a key only when the option is
# given); --num-shards/--shard-index also default to the SLURM job array (config.slurm_array)
CLI_KEYS = {
    "threshold": "minhash.threshold",
    "workers": "workers",
    "max_memory": "max_memory",
    "num_shards": "num_shards",
    "shard_index": "shard_index",
}
