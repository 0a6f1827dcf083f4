"""Steps 2-3 of `llmctl dedup`: LSH buckets -> candidate pairs -> clusters.

Bucketing sorts each band's keys with numpy instead of inserting into datasketch's MinHashLSH:
that index keeps every key in an in-memory dict and cannot be split by band across workers or
SLURM tasks, while a per-band sort needs n x rows values at a time and parallelises by band.
The (bands, rows) split is the optimum that datasketch's MinHashLSH picks for the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad

from llmctl.dedup.config import MinHashConfig


def lsh_params(cfg: MinHashConfig) -> tuple[int, int]:
    """(bands, rows): from the recipe, or minimizing false positives + negatives at the threshold."""
    if cfg.bands is not None and cfg.rows is not None:
        return cfg.bands, cfg.rows
    return optimal_params(cfg.threshold, cfg.num_perm)


def _p_candidate(s: float, r: float, b: float) -> float:
    """Probability that two documents of Jaccard s share a band: the S-curve 1 - (1 - s^r)^b."""
    return 1 - (1 - s**r) ** b


def _p_missed(s: float, r: float, b: float) -> float:
    return 1 - _p_candidate(s, r, b)


def optimal_params(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimizing the weighted areas of false positives
    (the S-curve below the threshold) and false negatives (1 - S-curve above it), Mining of Massive
    Datasets 3.4.3. datasketch keeps this private (`datasketch.lsh._optimal_param`; its only public
    route, `MinHashLSH(...).b, .r`, builds an index and refuses one band); this is the same search,
    integrals and tie-breaking (the first minimum wins), so bands and rows match its MinHashLSH
    exactly (tests/unit/dedup/test_lsh.py compares them)."""
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = quad(_p_candidate, 0.0, threshold, args=(float(r), float(b)))[0]
            fn = quad(_p_missed, threshold, 1.0, args=(float(r), float(b)))[0]
            error = fp * fp_weight + fn * fn_weight
            if error < best:
                best, opt = error, (b, r)
    return opt


def band_keys(block: np.ndarray) -> np.ndarray:
    """One 64-bit key per row of a (n, rows) block of hash values."""
    h = np.zeros(len(block), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(block.shape[1]):
            h = h * np.uint64(0x100000001B3) + block[:, c].astype(np.uint64)
    return h


def band_pairs(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Documents sharing a band key: (k, 2) pairs linking each to the first of its bucket."""
    idx = np.flatnonzero(valid)
    keys = band_keys(block[idx])
    order = np.argsort(keys, kind="stable")
    k, d = keys[order], idx[order]
    starts = np.ones(len(k), dtype=bool)
    starts[1:] = k[1:] != k[:-1]
    group = np.cumsum(starts) - 1
    first = d[starts][group]
    members = ~starts
    return np.stack([first[members], d[members]], axis=1).astype(np.int64)


def signature_agreement_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of row pairs: the fraction of equal MinHash values."""
    return (a == b).mean(axis=1).astype(np.float32)


class UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return int(root)

    def union_pairs(self, pairs: np.ndarray, rank: np.ndarray) -> None:
        """Union each pair; the root is always the member with the smaller rank (input order)."""
        for a, b in pairs.tolist():
            ra, rb = self.find(a), self.find(b)
            if ra == rb:
                continue
            if rank[ra] < rank[rb]:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb

    def roots(self) -> np.ndarray:
        return np.fromiter(
            (self.find(i) for i in range(len(self.parent))), dtype=np.int64, count=len(self.parent)
        )


@dataclass
class Clusters:
    """For every document: its cluster's survivor (itself when unique)."""

    survivor: np.ndarray  # int64 [n]
    exact: np.ndarray  # bool [n]: removed as an exact duplicate of its survivor


def cluster(n: int, pairs: np.ndarray, exact_hash: np.ndarray, rank: np.ndarray, use_exact: bool) -> Clusters:
    """Union near-duplicate pairs and exact-hash groups; survivor = lowest input rank."""
    uf = UnionFind(n)
    if use_exact:
        valid = np.flatnonzero(exact_hash != 0)
        order = valid[np.argsort(exact_hash[valid], kind="stable")]
        same = exact_hash[order[1:]] == exact_hash[order[:-1]]
        uf.union_pairs(np.stack([order[:-1][same], order[1:][same]], axis=1), rank)
    if len(pairs):
        uf.union_pairs(pairs, rank)
    survivor = uf.roots()
    exact = (survivor != np.arange(n)) & (exact_hash == exact_hash[survivor]) & (exact_hash != 0)
    return Clusters(survivor, exact)
