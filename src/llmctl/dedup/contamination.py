"""Set-level de-duplication: evaluation sets vs training documents, by shared word n-grams.

`load_eval_sets` reads `--against` JSONL files into n-gram hash tables (the same normalization
and hashing as the training side). `NgramIndex` is a Bloom filter of the kept training
documents' n-grams, saved as ngram_index.npy/.json, that `llmctl eval` queries to flag test items
whose n-grams occur in the training data (bounded memory whatever the corpus size; false
positives at the configured rate, no false negatives).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmctl.dedup.signatures import ngram_hashes, word_hashes, words
from llmctl.documents import read_small_jsonl
from llmctl.errors import UserError


@dataclass
class EvalSet:
    name: str
    path: Path
    examples: list[np.ndarray]  # n-gram hashes per example
    table: np.ndarray  # sorted unique n-gram hashes of all examples


def eval_text(obj: dict, fields: list[str]) -> str:
    parts = []
    for f in fields:
        v = obj.get(f)
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts.extend(x for x in v if isinstance(x, str))
    return "\n".join(parts)


def load_eval_sets(paths: list[Path], fields: list[str], n: int) -> list[EvalSet]:
    sets = []
    names = set()
    for path in paths:
        if not path.is_file():
            raise UserError(f"--against {path}: no such file")
        name = path.name.split(".")[0]
        if name in names:
            raise UserError(f"--against {path}: an evaluation set named '{name}' is given twice")
        names.add(name)
        examples = []
        for line_no, obj in read_small_jsonl(path):
            text = eval_text(obj, fields) if isinstance(obj, dict) else ""
            if not text:
                raise UserError(
                    f"{path}:{line_no}: none of the fields {', '.join(fields)} holds text; "
                    "set contamination.text_fields"
                )
            examples.append(ngram_hashes(word_hashes(words(text)), n))
        if not examples:
            raise UserError(f"--against {path}: no examples")
        table = np.unique(np.concatenate(examples)) if examples else np.zeros(0, np.uint64)
        sets.append(EvalSet(name, path, examples, table))
    return sets


class NgramIndex:
    """A Bloom filter over 64-bit n-gram hashes (double hashing: h1 + i * h2)."""

    def __init__(self, capacity: int, fp_rate: float, n: int):
        capacity = max(capacity, 1000)
        self.bits = max(64, int(-capacity * math.log(fp_rate) / math.log(2) ** 2))
        self.k = max(1, round(self.bits / capacity * math.log(2)))
        self.n = n
        self.array = np.zeros((self.bits + 7) // 8, dtype=np.uint8)

    def _positions(self, h: np.ndarray) -> np.ndarray:
        h1 = h & np.uint64(0xFFFFFFFF)
        h2 = (h >> np.uint64(32)) | np.uint64(1)
        i = np.arange(self.k, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            return ((h1[None, :] + i * h2[None, :]) % np.uint64(self.bits)).ravel()

    def add(self, h: np.ndarray) -> None:
        if len(h):
            pos = self._positions(h)
            np.bitwise_or.at(
                self.array,
                (pos >> np.uint64(3)).astype(np.int64),
                (1 << (pos & np.uint64(7))).astype(np.uint8),
            )

    def contains(self, h: np.ndarray) -> np.ndarray:
        """For each hash: possibly present (True) or certainly absent (False)."""
        if not len(h):
            return np.zeros(0, dtype=bool)
        pos = self._positions(h)
        hit = (
            self.array[(pos >> np.uint64(3)).astype(np.int64)] >> (pos & np.uint64(7)).astype(np.uint8)
        ) & 1
        return hit.reshape(self.k, -1).all(axis=0)

    def contains_text(self, text: str) -> bool:
        return bool(self.contains(ngram_hashes(word_hashes(words(text)), self.n)).any())

    def save(self, directory: Path) -> None:
        """ngram_index.npy (the bits) + ngram_index.json (parameters): plain, byte-stable files."""
        np.save(directory / "ngram_index.npy", self.array)
        params = {
            "bits": self.bits,
            "k": self.k,
            "ngram": self.n,
            "hash": "llmctl.dedup.signatures.ngram_hashes",
        }
        (directory / "ngram_index.json").write_text(json.dumps(params, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> NgramIndex:
        params = json.loads((directory / "ngram_index.json").read_text())
        idx = cls.__new__(cls)
        idx.array = np.load(directory / "ngram_index.npy")
        idx.bits, idx.k, idx.n = params["bits"], params["k"], params["ngram"]
        return idx
