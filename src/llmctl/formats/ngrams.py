"""Word n-gram hashes and the n-gram Bloom index: what dedup writes and eval reads.

    from llmctl.formats import ngrams; ngrams.NgramIndex.load(Path("runs/dd")).contains_text("...")

Words are hashed once with a stable hash (crc32 + adler32, the same in every process) and
combined into 64-bit n-gram hashes with numpy. `NgramIndex` is a Bloom filter of the kept training
documents' n-grams, saved as `ngram_index.npy` (the bits) and `ngram_index.json` (parameters),
that `llmctl eval` queries to flag test items whose n-grams occur in the training data (bounded
memory whatever the corpus size; false positives at the configured rate, no false negatives).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

INDEX = "ngram_index.json"  # the parameters; its presence marks an artifact that holds an index
BITS = "ngram_index.npy"

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Normalized words: case folded, punctuation and whitespace dropped."""
    return _WORD.findall(text.lower())


def stable_hash64(data: bytes) -> int:
    """A 64-bit hash that is the same in every process (Python's hash() is salted)."""
    return zlib.crc32(data) | (zlib.adler32(data) << 32)


def word_hashes(ws: list[str]) -> np.ndarray:
    return np.fromiter((stable_hash64(w.encode()) for w in ws), dtype=np.uint64, count=len(ws))


def ngram_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of every window of n word hashes (polynomial, wrap-around arithmetic)."""
    m = len(wh) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(0x100000001B3) + wh[k : k + m]
        # final avalanche (splitmix64) so that nearby inputs spread over all bits
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    return h


def text_ngrams(text: str, n: int) -> np.ndarray:
    """The n-gram hashes of a text's normalized words."""
    return ngram_hashes(word_hashes(words(text)), n)


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

    def add(self, h: np.ndarray, chunk: int = 1 << 18) -> None:
        """Set the bits of every hash in h, a chunk at a time (k positions per hash in memory).

        The positions are sorted first: the filter is then walked in order, where k random
        single-bit writes per hash cost a cache miss each (np.bitwise_or.at: ~3x the time); the
        bits that fall in one byte are OR-ed together before the write, since a fancy-indexed
        `|=` keeps only one of the writes to a repeated byte."""
        narrow = self.bits <= 1 << 32  # 32-bit positions sort in half the time
        for lo in range(0, len(h), chunk):
            pos = self._positions(h[lo : lo + chunk])
            pos = np.sort(pos.astype(np.uint32) if narrow else pos)
            byte = (pos >> 3).astype(np.intp)
            first = np.empty(len(byte), dtype=bool)
            first[:1] = True
            np.not_equal(byte[1:], byte[:-1], out=first[1:])
            at = np.flatnonzero(first)
            bits = np.left_shift(np.uint8(1), (pos & 7).astype(np.uint8))
            self.array[byte[at]] |= np.bitwise_or.reduceat(bits, at)

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
        return bool(self.contains(text_ngrams(text, self.n)).any())

    def save(self, directory: Path) -> None:
        """ngram_index.npy (the bits) + ngram_index.json (parameters): plain, byte-stable files."""
        np.save(directory / BITS, self.array)
        params = {
            "bits": self.bits,
            "k": self.k,
            "ngram": self.n,
            # names the hash function (kept from when it lived in dedup: the bytes of an index
            # written before and after the move are the same, and so is the function)
            "hash": "llmctl.dedup.signatures.ngram_hashes",
        }
        (directory / INDEX).write_text(json.dumps(params, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> NgramIndex:
        params = json.loads((directory / INDEX).read_text())
        idx = cls.__new__(cls)
        idx.array = np.load(directory / BITS)
        idx.bits, idx.k, idx.n = params["bits"], params["k"], params["ngram"]
        return idx
