"""`llmctl dedup`: de-duplication at document, line and set level (survey section 4.1).

    llmctl dedup runs/demo/clean --out runs/demo/dedup --config recipes/dedup/default.yaml
    llmctl dedup web/ --out runs/dedup --against eval/arc.jsonl --num-shards 8 --shard-index 3

Resumable steps, each under the staging directory with completion markers:
  1. signatures/NNNNN/  per input shard (parallel workers; SLURM array tasks): exact hash,
                        MinHash signature, distinct line hashes, contamination hits, and (with
                        the index on) the 13-gram hashes, 8 bytes a word
  2. buckets/band-NNN   per LSH band (parallel workers): candidate pairs
  3. clusters           union-find over verified pairs and exact groups; survivor = first in input
  4. filter             second read of the input: drop duplicates, contaminated documents and
                        boilerplate lines; write data/, rejected/, clusters, contamination.json,
                        the training n-gram index. Only documents holding a boilerplate line (known
                        from step 1's line hashes) are split into lines again, and the index takes
                        step 1's n-gram hashes of every document kept with its words unchanged.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmctl import artifacts, shards
from llmctl.artifacts import Manifest, write_atomic
from llmctl.config import to_dict
from llmctl.console import data_progress, info, track
from llmctl.dedup import lsh
from llmctl.dedup.config import DedupConfig, parse_size
from llmctl.dedup.contamination import EvalSet, load_eval_sets
from llmctl.dedup.signatures import DocSig, Signer, line_key, unit_texts
from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.formats.documents import Document, Malformed
from llmctl.formats.ngrams import NgramIndex, ngram_hashes, word_hashes, words
from llmctl.parallel import batched, ordered_map, resolve_workers

_signer: Signer | None = None  # built in the parent, inherited by forked workers


def _cpu_seconds() -> float:
    """User + system seconds of this process and of the workers it has reaped (a pool's are reaped
    when it closes, so a step's delta includes the workers it ran)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds per step, for the manifest's metrics.step_seconds (where the time goes)."""

    def __init__(self) -> None:
        self.steps: dict[str, list[float]] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        acc = self.steps.setdefault(name, [0.0, 0.0])
        acc[0] += wall
        acc[1] += cpu

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - w0, _cpu_seconds() - c0)

    def report(self) -> dict[str, dict[str, float]]:
        return {k: {"wall": round(w, 3), "cpu": round(c, 3)} for k, (w, c) in self.steps.items()}


def run(cfg: DedupConfig) -> Manifest | None:
    """Run this process's signature shard of `cfg.run.inputs`; finish the artifact when every
    shard is done. Returns the manifest, or None when other shards or steps are still to run.

    cfg.run.step: 'all' (default); or, for chained SLURM jobs, 'signatures' (this shard only),
    'buckets' (this shard's share of the LSH bands) and 'finish' (= merge_only).
    """
    inputs, step, resume = cfg.run.inputs, cfg.run.step, cfg.run.resume
    if not inputs:
        raise UserError("dedup needs at least one INPUT (an artifact, document files or directories)")
    out = cfg.run.out_dir("dedup")
    if step not in ("all", "signatures", "buckets", "finish"):
        raise UserError(f"--step {step!r}: choose all, signatures, buckets or finish")
    merge_only = cfg.run.merge_only or step == "finish"
    against = cfg.run.against
    sources = documents.expand(inputs)
    if len(against) > 32:
        raise UserError("--against takes at most 32 evaluation sets")
    evals = load_eval_sets(against, cfg.contamination.text_fields, cfg.contamination.ngram)
    need, n_est = estimate_memory(cfg, inputs, sources)
    limit = parse_size(cfg.max_memory)
    info(
        f"estimated peak memory {need / 2**20:,.0f} MiB for ~{n_est:,} documents "
        f"(max_memory {cfg.max_memory})"
    )
    if need > limit:
        raise UserError(
            f"estimated peak memory {need / 2**20:,.0f} MiB exceeds --max-memory {cfg.max_memory}; raise it, "
            "or split the input (--num-shards for the signature step)"
        )
    recorded = to_dict(cfg)
    recorded.pop("shard_index")
    recorded.pop("workers")
    sharded = cfg.num_shards > 1 or merge_only or step != "all"
    art = artifacts.begin(
        "dedup",
        out,
        config=recorded,
        inputs=[*inputs, *against],
        force=cfg.run.force,
        resume=resume,
        shared=sharded,
        input_suffixes=documents.SUFFIXES,
    )
    if art.done:
        return art.manifest
    sig_root = art.staging / "signatures"
    if not merge_only and step != "buckets":
        mine = shards.mine(sources, cfg.num_shards, cfg.shard_index)
        _signatures(cfg, mine, sig_root / f"{cfg.shard_index:05d}", evals)
    if step == "signatures":
        return None
    if step == "buckets":
        missing = [i for i in range(cfg.num_shards) if not shards.is_done(sig_root / f"{i:05d}")]
        if missing:
            raise UserError(f"--step buckets: signature shards {missing[:10]} are not done yet")
        bands, _ = lsh.lsh_params(cfg.minhash)
        arrays = ShardArrays(sig_root, cfg.minhash.num_perm)
        _bands(
            cfg,
            arrays,
            art.staging / "buckets",
            [b for b in range(bands) if b % cfg.num_shards == cfg.shard_index],
        )
        return None
    if not shards.claim_merge(
        sig_root, art.staging, cfg.num_shards, merge_only=merge_only, resume=resume, out=out
    ):
        return None
    return _finish(cfg, art, sources, evals)


def estimate_memory(
    cfg: DedupConfig, inputs: list[str | Path], sources: list[documents.Source]
) -> tuple[int, int]:
    """(bytes, documents): peak memory of the finish step, which holds per-document arrays."""
    docs = 0
    for p in map(Path, inputs):
        if artifacts.is_complete(p):
            docs += int(artifacts.Manifest.read(p).metrics.get("kept_docs", 0))
    if docs == 0:  # raw input: ~2 KB of compressed JSONL per document is typical of web text
        docs = max(1, sum(s.path.stat().st_size for s in sources) // 2000)
    _, rows = lsh.lsh_params(cfg.minhash)
    per_doc = 8 * 6 + 4 * rows * 2 + 32  # keys/exact/survivor/parents, a band block, sort buffers
    per_doc += 8 * 30 if cfg.lines.enabled else 0  # ~30 distinct candidate lines per document
    per_doc += 3 * 8 if cfg.contamination.index else 0  # Bloom bits for ~1,000 n-grams per document
    base = 300 << 20  # interpreter, numpy, datasketch
    chunk = cfg.chunk_size * 20_000 * 2 * resolve_workers(cfg.workers)  # documents in flight
    return base + chunk + per_doc * docs, docs


# ---------------------------------------------------------------- step 1: signatures


def _keyed(mine: list[tuple[int, documents.Source]], cfg: DedupConfig, cursor: documents.Cursor) -> Iterator:
    """(key, record) in input order; key = file rank << 32 | position, unique and shard-independent."""
    for rank, src in mine:
        pos = 0
        for item in documents.read(
            [src], text_field=cfg.input.text_field, id_field=cfg.input.id_field, cursor=cursor
        ):
            yield (rank << 32) | pos, item
            pos += 1


def _sign_chunk(chunk: list[tuple[int, Document | Malformed]]) -> tuple[list[int], list[DocSig]]:
    assert _signer is not None
    return [k for k, _ in chunk], [_signer(item) for _, item in chunk]


_FILES = {  # per-document arrays of a signature shard, appended chunk by chunk
    "keys": np.int64,
    "exact": np.uint64,
    "has_sig": np.bool_,
    "n_lines": np.int32,
    "contam": np.uint32,
    "n_words": np.int32,
}


def _signatures(
    cfg: DedupConfig, mine: list[tuple[int, documents.Source]], shard: Path, evals: list[EvalSet]
) -> None:
    global _signer
    if not shards.start(shard):
        return
    w0, c0 = time.perf_counter(), _cpu_seconds()
    _signer = Signer(cfg, {e.name: e.table for e in evals})
    empty = _signer.empty
    names = [e.name for e in evals]
    matched: dict[str, list[np.ndarray]] = {n: [] for n in names}
    cursor = documents.Cursor()
    files = {k: open(shard / f"{k}.bin", "wb") for k in (*_FILES, "sig", "lines", "grams")}
    try:
        with data_progress("dedup: signatures", sum(s.path.stat().st_size for _, s in mine)) as bar:
            chunks = batched(_keyed(mine, cfg, cursor), cfg.chunk_size)
            for keys, sigs in ordered_map(_sign_chunk, chunks, workers=resolve_workers(cfg.workers)):
                cols = {
                    "keys": keys,
                    "exact": [s.exact for s in sigs],
                    "has_sig": [s.signature is not None for s in sigs],
                    "n_lines": [len(s.lines) for s in sigs],
                    "contam": [sum(1 << names.index(n) for n in s.contaminated) for s in sigs],
                    "n_words": [s.n_words for s in sigs],
                }
                for k, dtype in _FILES.items():
                    np.array(cols[k], dtype=dtype).tofile(files[k])
                np.stack([s.signature if s.signature is not None else empty for s in sigs]).tofile(
                    files["sig"]
                )
                for s in sigs:
                    s.lines.tofile(files["lines"])
                    if s.grams is not None:
                        s.grams.tofile(files["grams"])
                    for n, h in s.contaminated.items():
                        matched[n].append(h)
                bar.update(cursor.position(), len(keys))
    finally:
        for f in files.values():
            f.close()
    for i, n in enumerate(names):
        hashes = np.unique(np.concatenate(matched[n])) if matched[n] else np.zeros(0, np.uint64)
        hashes.tofile(shard / f"matched-{i}.bin")
    seconds = {"wall": time.perf_counter() - w0, "cpu": _cpu_seconds() - c0}
    meta = {"num_perm": cfg.minhash.num_perm, "eval_sets": names, "seconds": seconds}
    write_atomic(shard / "meta.json", json.dumps(meta))
    shards.finish(shard)


# ---------------------------------------------------------------- steps 2-4


def _signature_rows(path: Path, num_perm: int) -> np.ndarray:
    """A shard's (documents x num_perm) signatures, memory-mapped; mmap refuses an empty file (a
    shard whose inputs held no documents), which is simply zero rows."""
    if path.stat().st_size == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    return np.memmap(path, dtype=np.uint32, mode="r").reshape(-1, num_perm)


class ShardArrays:
    """Every signature shard's per-document arrays, concatenated in shard order."""

    def __init__(self, root: Path, num_perm: int):
        self.dirs = sorted(p for p in root.iterdir() if p.is_dir())
        load = lambda k, dt: np.concatenate([np.fromfile(d / f"{k}.bin", dtype=dt) for d in self.dirs])  # noqa: E731
        self.keys = load("keys", np.int64)
        self.exact = load("exact", np.uint64)
        self.has_sig = load("has_sig", np.bool_)
        self.n_lines = load("n_lines", np.int32)
        self.contam = load("contam", np.uint32)
        self.n_words = load("n_words", np.int32)
        self.num_perm = num_perm
        self.sigs = [_signature_rows(d / "sig.bin", num_perm) for d in self.dirs]
        self.sizes = [len(s) for s in self.sigs]  # documents per shard
        self.n = len(self.keys)
        # shards signed by an llmctl that did not keep n-gram hashes (a --resume across versions)
        self.has_grams = all((d / "grams.bin").is_file() for d in self.dirs)

    def band(self, b: int, rows: int) -> np.ndarray:
        return np.concatenate([s[:, b * rows : (b + 1) * rows] for s in self.sigs])

    def rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Full signatures of the given global document indices."""
        sizes = np.array([len(s) for s in self.sigs])
        starts = np.concatenate([[0], np.cumsum(sizes)])
        shard = np.searchsorted(starts, idx, side="right") - 1
        out = np.empty((len(idx), self.num_perm), dtype=np.uint32)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.sigs[s][idx[sel] - starts[s]]
        return out

    def lines(self) -> np.ndarray:
        return np.concatenate([np.fromfile(d / "lines.bin", dtype=np.uint64) for d in self.dirs])

    def grams(self) -> list[np.ndarray]:
        """Each shard's n-gram hashes (documents in order, max(0, n_words - n + 1) each), mapped."""
        return [
            np.memmap(p, dtype=np.uint64, mode="r") if p.stat().st_size else np.zeros(0, np.uint64)
            for p in (d / "grams.bin" for d in self.dirs)
        ]


_arrays: ShardArrays | None = None
_rows = 0


def _band_job(b: int) -> np.ndarray:
    assert _arrays is not None
    return lsh.band_pairs(_arrays.band(b, _rows), _arrays.has_sig)


def _bands(cfg: DedupConfig, arrays: ShardArrays, root: Path, wanted: list[int]) -> None:
    """Candidate pairs of the wanted bands not computed yet, one .npy per band (kept for --resume)."""
    global _arrays, _rows
    _, rows = lsh.lsh_params(cfg.minhash)
    root.mkdir(exist_ok=True)
    todo = [b for b in wanted if not (root / f"band-{b:03d}.npy").is_file()]
    _arrays, _rows = arrays, rows
    jobs = ordered_map(_band_job, todo, workers=min(resolve_workers(cfg.workers), max(1, len(todo))))
    for b, pairs in zip(
        todo, track(jobs, total=len(todo), description="dedup: LSH bands", unit="bands"), strict=True
    ):
        np.save(root / f".band-{b:03d}.tmp.npy", pairs)
        (root / f".band-{b:03d}.tmp.npy").rename(root / f"band-{b:03d}.npy")


def _pairs(cfg: DedupConfig, arrays: ShardArrays, root: Path) -> tuple[np.ndarray, int]:
    """Candidate pairs of every band, then verified by estimated Jaccard."""
    bands, _ = lsh.lsh_params(cfg.minhash)
    _bands(cfg, arrays, root, list(range(bands)))
    found = [np.load(root / f"band-{b:03d}.npy") for b in range(bands)]
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 2), np.int64)
    candidates = len(pairs)
    if cfg.minhash.verify and len(pairs):
        est = lsh.signature_agreement_rows(arrays.rows_of(pairs[:, 0]), arrays.rows_of(pairs[:, 1]))
        pairs = pairs[est >= cfg.minhash.verify_threshold()]
    return pairs, candidates


@dataclass
class Decisions:
    """What happens to every document (by global index), decided before the second read."""

    survivor: np.ndarray  # int64 [n]: the cluster's first document (itself when unique)
    exact: np.ndarray  # bool [n]: an exact duplicate of its survivor
    duplicate: np.ndarray  # bool [n]: removed as a duplicate
    contaminated: np.ndarray  # bool [n]: removed for sharing an n-gram with an evaluation set
    jaccard: np.ndarray  # float32 [n]: estimated Jaccard with the survivor
    boilerplate: np.ndarray  # sorted line hashes to remove
    has_boilerplate: np.ndarray  # bool [n]: one of the document's lines is in `boilerplate`
    candidates: int
    verified: int


def _decide(cfg: DedupConfig, arrays: ShardArrays, stage: Path, clock: Clock) -> Decisions:
    """Steps 2-3 (LSH pairs, clusters) and the boilerplate lines, from the signature arrays."""
    n = arrays.n
    malformed = arrays.exact == 0
    with clock.step("lsh"):
        pairs, candidates = (
            _pairs(cfg, arrays, stage / "buckets") if cfg.minhash.enabled else (np.zeros((0, 2), np.int64), 0)
        )
    with clock.step("clusters"):
        groups = lsh.cluster(n, pairs, arrays.exact, arrays.keys, cfg.exact.enabled)
        dup = groups.survivor != np.arange(n)
        contaminated = ~dup & ~malformed & (arrays.contam != 0)
        jaccard = np.ones(n, dtype=np.float32)
        near = np.flatnonzero(dup & ~groups.exact & arrays.has_sig)
        if len(near):
            jaccard[near] = lsh.signature_agreement_rows(
                arrays.rows_of(near), arrays.rows_of(groups.survivor[near])
            )
    boiler = np.zeros(0, np.uint64)
    has_boiler = np.zeros(n, dtype=bool)
    with clock.step("line_counts"):
        if cfg.lines.enabled:  # document frequencies over the documents that stay
            eligible = ~malformed & ~dup & ~contaminated
            lines = arrays.lines()
            values, counts = np.unique(lines[np.repeat(eligible, arrays.n_lines)], return_counts=True)
            need = max(cfg.lines.min_docs, math.ceil(cfg.lines.min_doc_fraction * int(eligible.sum())))
            boiler = values[counts >= need]
            # step 1 hashed the same stripped units with the same min_chars as the filter's split,
            # so a document without a hit here has no line to remove there
            if len(boiler):
                found = boiler[np.minimum(np.searchsorted(boiler, lines), len(boiler) - 1)] == lines
                ends = np.cumsum(arrays.n_lines, dtype=np.int64)
                has_boiler[np.searchsorted(ends, np.flatnonzero(found), side="right")] = True
    return Decisions(
        groups.survivor, groups.exact, dup, contaminated, jaccard, boiler, has_boiler, candidates, len(pairs)
    )


@dataclass
class FilterResult:
    kept: int = 0
    input_bytes: int = 0
    lines_removed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    contaminated_by: Counter[str] = field(default_factory=Counter)
    members: dict[int, list[tuple[str, float]]] = field(default_factory=dict)  # survivor -> (id, jaccard)
    survivor_id: dict[int, str] = field(default_factory=dict)


def _filter(
    cfg: DedupConfig,
    stage: Path,
    sources: list[documents.Source],
    arrays: ShardArrays,
    d: Decisions,
    names: list[str],
    index: NgramIndex | None,
    clock: Clock,
) -> FilterResult:
    """Step 4: read the input again, in order, and write data/ and rejected/."""
    res = FilterResult()
    # kept documents whose words are step 1's: the index takes their n-gram hashes from step 1
    from_step1 = np.zeros(arrays.n, dtype=bool)
    rehashed: list[np.ndarray] = []  # n-grams of kept documents that lost lines, not yet added
    pending = 0
    order = np.argsort(arrays.keys)
    sorted_keys = arrays.keys[order]
    roots = set(np.unique(d.survivor[d.duplicate]).tolist())
    for sub in ("data", "rejected"):
        if (stage / sub).exists():
            shutil.rmtree(stage / sub)  # an interrupted filter step starts over
    cursor = documents.Cursor()

    def reject(item: Document, reason: str, meta: dict[str, Any]) -> None:
        rejected.write({"id": item.id, "text": item.text, "meta": meta, "reason": reason})
        res.reasons[reason] += 1

    with (
        documents.ShardWriter(stage / "data") as kept,
        documents.ShardWriter(stage / "rejected") as rejected,
        data_progress("dedup: filter", sum(s.path.stat().st_size for s in sources)) as bar,
    ):
        shown = 0
        for i, (key, item) in enumerate(_keyed(list(enumerate(sources)), cfg, cursor)):
            if i - shown == 256:
                bar.update(cursor.position(), 256)
                shown = i
            gi = int(order[np.searchsorted(sorted_keys, key)])
            if isinstance(item, Malformed):
                rejected.write(documents.malformed_record(item))
                res.reasons["malformed"] += 1
                continue
            res.input_bytes += len(item.text.encode("utf-8", errors="surrogatepass"))
            if gi in roots:  # survivors come first in input order: their ids are known in time
                res.survivor_id[gi] = item.id
            if d.duplicate[gi]:
                root, jac = int(d.survivor[gi]), round(float(d.jaccard[gi]), 4)
                res.members.setdefault(root, []).append((item.id, jac))
                meta = {**item.meta, "duplicate_of": res.survivor_id[root], "jaccard": jac}
                reject(item, "exact_duplicate" if d.exact[gi] else "near_duplicate", meta)
            elif d.contaminated[gi]:
                hit = [nm for b, nm in enumerate(names) if int(arrays.contam[gi]) >> b & 1]
                res.contaminated_by.update(hit)
                reject(item, "contaminated", {**item.meta, "eval_sets": hit})
            else:
                text, removed, hit = item.text, 0, bool(d.has_boilerplate[gi])
                if hit or (len(d.boilerplate) and cfg.lines.unit == "paragraph"):
                    w0, c0 = time.perf_counter(), time.process_time()
                    text, removed = _strip_boilerplate(item.text, d.boilerplate, cfg, hit)
                    clock.add("boilerplate", time.perf_counter() - w0, time.process_time() - c0)
                res.lines_removed += removed
                meta = {**item.meta, "boilerplate_removed": removed} if removed else item.meta
                ws = words(text) if removed else []
                if removed and len(ws) < cfg.lines.min_words_after:
                    reject(item, "too_short_after_line_dedup", meta)
                    continue
                kept.write({"id": item.id, "text": text, "meta": meta})
                res.kept += 1
                if index is not None and not removed and arrays.has_grams:
                    # (paragraph units re-joined without a removal keep the same words)
                    from_step1[gi] = True
                elif index is not None:  # lines removed: hash the words that remain
                    w0, c0 = time.perf_counter(), time.process_time()
                    rehashed.append(ngram_hashes(word_hashes(ws or words(text)), cfg.contamination.ngram))
                    pending += len(rehashed[-1])
                    if pending >= 1 << 18:  # added in batches: one small add per document costs more
                        index.add(np.concatenate(rehashed))
                        rehashed, pending = [], 0
                    clock.add("index", time.perf_counter() - w0, time.process_time() - c0)
        bar.update(cursor.position(), arrays.n - shown)
    if index is not None:
        w0, c0 = time.perf_counter(), time.process_time()
        if rehashed:
            index.add(np.concatenate(rehashed))
        if arrays.has_grams:
            _index_step1_grams(index, arrays, from_step1, cfg.contamination.ngram)
        clock.add("index", time.perf_counter() - w0, time.process_time() - c0)
    return res


def _index_step1_grams(
    index: NgramIndex, arrays: ShardArrays, docs: np.ndarray, n: int, chunk: int = 1 << 20
) -> None:
    """Add step 1's n-gram hashes of the selected documents (bool [documents]) to the index, a
    chunk at a time: a Bloom filter's bits do not depend on the order n-grams are added in."""
    per_doc = np.maximum(arrays.n_words.astype(np.int64) - n + 1, 0)
    first = 0
    for grams, size in zip(arrays.grams(), arrays.sizes, strict=True):
        counts = per_doc[first : first + size]
        if int(counts.sum()) != len(grams):
            raise RuntimeError(f"signature shard {first}: {len(grams)} n-grams for {counts.sum()} expected")
        take = np.repeat(docs[first : first + size], counts)
        for lo in range(0, len(grams), chunk):
            index.add(grams[lo : lo + chunk][take[lo : lo + chunk]])
        first += size


def _finish(
    cfg: DedupConfig, art: artifacts.StageRun, sources: list[documents.Source], evals: list[EvalSet]
) -> Manifest:
    t0 = time.perf_counter()
    stage = art.staging
    clock = Clock()
    for meta in sorted((stage / "signatures").glob("*/meta.json")):
        seconds = json.loads(meta.read_text()).get("seconds", {})  # absent: written by an older llmctl
        clock.add("signatures", seconds.get("wall", 0.0), seconds.get("cpu", 0.0))
    arrays = ShardArrays(stage / "signatures", cfg.minhash.num_perm)
    n = arrays.n
    d = _decide(cfg, arrays, stage, clock)
    index = None
    if cfg.contamination.index:  # sized for the n-grams of every document that may stay
        stays = (arrays.exact != 0) & ~d.duplicate & ~d.contaminated
        grams = np.maximum(arrays.n_words[stays].astype(np.int64) - cfg.contamination.ngram + 1, 0).sum()
        index = NgramIndex(int(grams), cfg.contamination.index_false_positive_rate, cfg.contamination.ngram)
    w0, c0 = time.perf_counter(), _cpu_seconds()
    res = _filter(cfg, stage, sources, arrays, d, [e.name for e in evals], index, clock)
    documents.write_jsonl_zst(
        stage / "clusters.jsonl.zst",
        (
            {"survivor": res.survivor_id[r], "members": [m for m, _ in mem], "jaccard": [j for _, j in mem]}
            for r, mem in res.members.items()
        ),
    )
    contamination = _contamination_report(evals, stage / "signatures", res.contaminated_by)
    write_atomic(stage / "contamination.json", json.dumps(contamination, indent=2) + "\n")
    if index is not None:
        index.save(stage)
    # the filter's own work (reading, deciding, writing): its wall and CPU less the two passes inside it
    inner = [clock.steps.get(k, [0.0, 0.0]) for k in ("boilerplate", "index")]
    clock.add(
        "filter",
        time.perf_counter() - w0 - sum(w for w, _ in inner),
        _cpu_seconds() - c0 - sum(c for _, c in inner),
    )
    for sub in ("signatures", "buckets"):
        shutil.rmtree(stage / sub, ignore_errors=True)
    shards.release_merge(stage)
    rejected_docs = sum(res.reasons.values())
    if res.kept + rejected_docs != n:
        raise RuntimeError(f"accounting bug: kept {res.kept} + rejected {rejected_docs} != input {n}")
    sizes = [len(m) + 1 for m in res.members.values()]
    metrics: dict[str, Any] = {
        "input_docs": n,
        "input_bytes": res.input_bytes,
        "kept_docs": res.kept,
        "rejected_docs": rejected_docs,
        "kept_fraction": round(res.kept / max(1, n), 4),
        "rejected": dict(sorted(res.reasons.items())),
        "clusters": len(res.members),
        "largest_cluster": max(sizes, default=1),
        "lsh_bands_rows": list(lsh.lsh_params(cfg.minhash)),
        "candidate_pairs": d.candidates,
        "verified_pairs": d.verified,
        "boilerplate_lines": len(d.boilerplate),
        "lines_removed": res.lines_removed,
        "contamination": {k: v["train_docs_removed"] for k, v in contamination.items()},
        "finish_seconds": round(time.perf_counter() - t0, 3),
        # wall and CPU (user + system, workers included) per step: signatures (summed over shards),
        # lsh, clusters, line_counts, filter (read, decide, write), boilerplate (line removal), index
        "step_seconds": clock.report(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    summary = {
        k: metrics[k] for k in ("input_docs", "kept_docs", "rejected_docs", "clusters", "lines_removed")
    }
    summary.update({k: v for k, v in res.reasons.items() if k != "malformed"})
    return art.commit(metrics, summary)


def _strip_boilerplate(text: str, boiler: np.ndarray, cfg: DedupConfig, hit: bool = True) -> tuple[str, int]:
    """(text without its boilerplate units, units removed). `hit`: step 1 found one of the text's
    units in `boiler`; without one nothing is removed (paragraphs still come back stripped)."""
    if not len(boiler):
        return text, 0
    paragraph = cfg.lines.unit == "paragraph"
    if not hit and not paragraph:
        return text, 0
    parts = unit_texts(text, "paragraph") if paragraph else text.split("\n")
    if not hit:
        return "\n\n".join(parts), 0
    stripped = [p.strip() for p in parts]
    at = [i for i, s in enumerate(stripped) if len(s) >= cfg.lines.min_chars]
    keys = np.fromiter((line_key(stripped[i]) for i in at), dtype=np.uint64, count=len(at))
    found = boiler[np.minimum(np.searchsorted(boiler, keys), len(boiler) - 1)] == keys
    drop = {at[j] for j in np.flatnonzero(found).tolist()}
    keep = [p for i, p in enumerate(parts) if i not in drop]
    return ("\n\n" if paragraph else "\n").join(keep), len(drop)


def _contamination_report(evals: list[EvalSet], root: Path, removed: Counter[str]) -> dict[str, Any]:
    report = {}
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    for i, e in enumerate(evals):
        parts = [np.fromfile(d / f"matched-{i}.bin", dtype=np.uint64) for d in dirs]
        matched = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)
        hit = sum(1 for ex in e.examples if len(ex) and np.isin(ex, matched).any())
        report[e.name] = {
            "path": str(e.path),
            "examples": len(e.examples),
            "examples_hit": hit,
            "train_docs_removed": removed[e.name],
        }
    return report
