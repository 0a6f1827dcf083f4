"""`llmctl dedup`: near-duplicate quality against exact Jaccard, determinism, shards, contamination,
boilerplate lines, memory refusal, resume."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from llmctl import artifacts, config
from llmctl.dedup import DedupConfig, run
from llmctl.formats.documents import read_shards
from llmctl.formats.ngrams import NgramIndex, words
from tests.conftest import llmctl
from tests.fixtures import corpus

RATES = [0.0, 0.005, 0.01, 0.04, 0.10]  # exact copy, light, light, medium, heavy word edits


def edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    ws = text.split(" ")
    for i in rng.sample(range(len(ws)), round(rate * len(ws))):
        ws[i] = rng.choice(vocab)
    return " ".join(ws)


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    ws = words(text)
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """150 distinct passages + 100 variants of 50 of them at known edit rates."""
    rng = random.Random(7)
    base = corpus.prose(150)
    vocab = sorted({w for p in base for w in p.split()})
    docs = [{"id": f"base-{i:03d}", "text": p} for i, p in enumerate(base)]
    for i in range(50):
        for copy in range(2):
            rate = RATES[(i + copy) % len(RATES)]
            docs.append({"id": f"var-{i:03d}-{copy}", "text": edit(base[i], rate, rng, vocab), "rate": rate})
    root = tmp_path_factory.mktemp("planted")
    for k in range(3):  # several files, so shards have something to split
        with open(root / f"part-{k}.jsonl", "w") as f:
            for d in docs[k::3]:
                f.write(json.dumps(d) + "\n")
    return root, docs


def predicted_pairs(out: Path) -> set[frozenset]:
    cluster_of = {}
    for r in read_shards(out / "data"):
        cluster_of[r["id"]] = r["id"]
    for r in read_shards(out / "rejected"):
        if r["reason"] in ("exact_duplicate", "near_duplicate"):
            cluster_of[r["id"]] = r["meta"]["duplicate_of"]
    groups: dict[str, list[str]] = {}
    for doc, root in cluster_of.items():
        groups.setdefault(root, []).append(doc)
    return {frozenset(p) for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


def test_near_duplicate_recall_and_precision(planted, tmp_path):
    src, docs = planted
    out = tmp_path / "out"
    cfg = config.load(DedupConfig, None, ["lines.enabled=false", "workers=2"])
    m = run(config.with_run(cfg, inputs=[src], out=out))
    sh = {d["id"]: shingles(d["text"]) for d in docs}
    truth = {
        frozenset((a, b))
        for a, b in itertools.combinations(sorted(sh), 2)
        if jaccard(sh[a], sh[b]) >= cfg.minhash.threshold
    }
    pred = predicted_pairs(out)
    assert len(truth) >= 60  # the planted exact and light-edit families
    recall = len(pred & truth) / len(truth)
    precision = len(pred & truth) / len(pred)
    assert recall >= 0.95, (recall, sorted(map(sorted, truth - pred))[:5])
    assert precision >= 0.95, (precision, sorted(map(sorted, pred - truth))[:5])
    assert m.metrics["kept_docs"] + m.metrics["rejected_docs"] == m.metrics["input_docs"] == len(docs)
    text = {d["id"]: d["text"] for d in docs}
    rejected = {r["id"]: r for r in read_shards(out / "rejected")}
    for r in rejected.values():
        if r["reason"] == "exact_duplicate":
            assert words(r["text"]) == words(text[r["meta"]["duplicate_of"]])
    copies = [d["id"] for d in docs if d.get("rate") == 0.0]
    assert all(
        c in rejected or any(r["meta"]["duplicate_of"] == c for r in rejected.values()) for c in copies
    )
    position = {}  # input order: file part-k holds docs[k::3]
    for k in range(3):
        for j, d in enumerate(docs[k::3]):
            position[d["id"]] = (k, j)
    clusters = list(read_shards_file(out / "clusters.jsonl.zst"))
    assert len(clusters) == m.metrics["clusters"]
    for c in clusters:  # every member's estimate is stored; the survivor is the first in input order
        assert len(c["members"]) == len(c["jaccard"])
        assert position[c["survivor"]] < min(position[x] for x in c["members"])


def read_shards_file(path: Path):
    import zstandard

    data = zstandard.ZstdDecompressor().stream_reader(open(path, "rb")).read()
    return [json.loads(x) for x in data.splitlines()]


def test_same_survivors_whatever_the_workers_and_shards(planted, tmp_path):
    src, _ = planted
    outs = {}
    for name, overrides in {"w1": ["workers=1"], "w2": ["workers=2", "chunk_size=7"]}.items():
        cfg = config.load(DedupConfig, None, overrides)
        run(config.with_run(cfg, inputs=[src], out=tmp_path / name))
        outs[name] = tmp_path / name
    sharded = tmp_path / "sharded"
    for i in range(3):
        cfg = config.load(DedupConfig, None, ["num_shards=3", f"shard_index={i}", "workers=1"])
        m = run(config.with_run(cfg, inputs=[src], out=sharded))
        assert (m is None) == (i < 2)
    outs["sharded"] = sharded
    ref = outs["w1"]
    for out in outs.values():
        for f in ("clusters.jsonl.zst", "contamination.json", "ngram_index.npy"):
            assert (out / f).read_bytes() == (ref / f).read_bytes(), f
        for sub in ("data", "rejected"):
            for p in sorted((ref / sub).iterdir()):
                assert (out / sub / p.name).read_bytes() == p.read_bytes(), p.name


def test_boilerplate_lines_are_removed(tmp_path):
    passages = corpus.prose(12)
    footer = "Subscribe to our newsletter for more updates from the editors."
    nav = "Home | News | Sports | Weather | Contact the newsroom today"
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i, p in enumerate(passages):
            f.write(json.dumps({"id": f"d{i}", "text": f"{nav}\n{p}\n{footer}"}) + "\n")
        f.write(json.dumps({"id": "only-boilerplate", "text": f"{nav}\n{footer}\nThanks."}) + "\n")
    cfg = config.load(DedupConfig, None, ["lines.min_docs=5", "minhash.enabled=false"])
    m = run(config.with_run(cfg, inputs=[src], out=tmp_path / "out"))
    kept = {r["id"]: r for r in read_shards(tmp_path / "out" / "data")}
    assert len(kept) == 12 and all(footer not in r["text"] and nav not in r["text"] for r in kept.values())
    assert kept["d0"]["text"].strip() == passages[0] and kept["d0"]["meta"]["boilerplate_removed"] == 2
    assert m.metrics["rejected"] == {"too_short_after_line_dedup": 1}
    assert m.metrics["boilerplate_lines"] == 2 and m.metrics["lines_removed"] == 26


def test_contamination_removes_overlapping_documents_and_indexes_the_rest(tmp_path):
    passages = corpus.prose(10)
    src = tmp_path / "train.jsonl"
    with open(src, "w") as f:
        for i, p in enumerate(passages):
            f.write(json.dumps({"id": f"t{i}", "text": p}) + "\n")
    leaked = " ".join(passages[3].split()[100:120])  # 20 words copied from a training document
    unseen = "a question about something that no training document ever says in these exact words at all"
    evalset = tmp_path / "qa.jsonl"
    evalset.write_text(
        json.dumps({"question": f"Who said: {leaked}?"}) + "\n" + json.dumps({"question": unseen}) + "\n"
    )
    cfg = config.load(DedupConfig, None, ["lines.enabled=false"])
    m = run(config.with_run(cfg, inputs=[src], out=tmp_path / "out", against=[evalset]))
    report = json.loads((tmp_path / "out" / "contamination.json").read_text())
    assert report["qa"]["examples"] == 2 and report["qa"]["examples_hit"] == 1
    assert report["qa"]["train_docs_removed"] == 1
    rejected = list(read_shards(tmp_path / "out" / "rejected"))
    assert [(r["id"], r["reason"], r["meta"]["eval_sets"]) for r in rejected] == [
        ("t3", "contaminated", ["qa"])
    ]
    assert m.metrics["contamination"] == {"qa": 1}
    index = NgramIndex.load(tmp_path / "out")
    assert index.contains_text(" ".join(passages[5].split()[50:70]))  # kept text is indexed
    assert not index.contains_text(leaked)  # the removed document is not
    assert not index.contains_text(unseen)


def test_memory_estimate_refuses_before_any_work(planted, tmp_path):
    src, _ = planted
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--max-memory", "10M")
    assert r.returncode == 2 and "exceeds --max-memory 10M" in r.stderr
    assert not (tmp_path / "o").exists() and not artifacts.staging_dir(tmp_path / "o").exists()


def test_bad_evaluation_set_is_exit_2(planted, tmp_path):
    src, _ = planted
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\n{"question": broken\n')
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--against", str(bad))
    assert r.returncode == 2 and "bad.jsonl:2: not valid JSON" in r.stderr
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--against", str(tmp_path / "none.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_resume_reuses_finished_steps(planted, tmp_path, monkeypatch):
    src, _ = planted
    out = tmp_path / "out"
    cfg = config.load(DedupConfig, None, ["workers=1"])
    import llmctl.dedup.stage as stage

    real, real_sign, real_band = stage.documents.ShardWriter.write, stage._sign_chunk, stage._band_job
    # the filter step writes every document through a ShardWriter (the other steps write none)
    monkeypatch.setattr(
        stage.documents.ShardWriter, "write", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        # killed in the filter step, after signatures and buckets
        run(config.with_run(cfg, inputs=[src], out=out))
    staging = artifacts.staging_dir(out)
    sig = staging / "signatures" / "00000" / "sig.bin"
    bands = sorted((staging / "buckets").glob("band-*.npy"))
    assert sig.is_file() and bands and not out.exists()
    monkeypatch.setattr(stage.documents.ShardWriter, "write", real)
    calls = []
    monkeypatch.setattr(stage, "_sign_chunk", lambda chunk: calls.append(1))  # must not be needed
    monkeypatch.setattr(stage, "_band_job", lambda b: calls.append(b))  # nor this
    m = run(config.with_run(cfg, inputs=[src], out=out, resume=True))
    assert calls == [] and artifacts.is_complete(out)
    monkeypatch.setattr(stage, "_sign_chunk", real_sign)
    monkeypatch.setattr(stage, "_band_job", real_band)
    ref = tmp_path / "ref"
    run(config.with_run(cfg, inputs=[src], out=ref))
    assert sorted(x["id"] for x in read_shards(out / "data")) == sorted(
        x["id"] for x in read_shards(ref / "data")
    )
    assert m.metrics["input_docs"] == 250


def test_unknown_flag_values_are_exit_2(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "x"}\n')
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--threshold", "1.5")
    assert r.returncode == 2 and "minhash.threshold" in r.stderr
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--set", "minhash.bands=4")
    assert r.returncode == 2 and "set bands and rows together" in r.stderr


def test_band_pairs_link_equal_keys():
    from llmctl.dedup.lsh import band_pairs, cluster

    block = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [1, 2]], dtype=np.uint32)
    pairs = band_pairs(block, np.ones(5, dtype=bool))
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (0, 4)]
    groups = cluster(5, pairs, np.array([7, 8, 7, 9, 10], dtype=np.uint64), np.arange(5) * 10, True)
    assert groups.survivor.tolist() == [0, 1, 0, 3, 0]
    assert groups.exact.tolist() == [False, False, True, False, False]


def test_chained_steps_equal_one_run(planted, tmp_path):
    src, _ = planted
    out = tmp_path / "chained"
    for step in ("signatures", "buckets"):
        for i in (1, 0):
            r = llmctl(
                "dedup",
                str(src),
                "--out",
                str(out),
                "--step",
                step,
                "--num-shards",
                "2",
                "--shard-index",
                str(i),
            )
            assert r.returncode == 0, r.stderr
            assert not out.exists()
    bands = sorted(p.name for p in (artifacts.staging_dir(out) / "buckets").glob("band-*.npy"))
    from llmctl.dedup.lsh import lsh_params

    assert len(bands) == lsh_params(DedupConfig().minhash)[0]  # every band, split over both shards
    r = llmctl("dedup", str(src), "--out", str(out), "--step", "finish", "--num-shards", "2")
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert llmctl("dedup", str(src), "--out", str(ref)).returncode == 0
    for sub in ("data", "rejected"):
        for p in sorted((ref / sub).iterdir()):
            assert (out / sub / p.name).read_bytes() == p.read_bytes()


def test_buckets_before_signatures_is_exit_2(planted, tmp_path):
    src, _ = planted
    r = llmctl("dedup", str(src), "--out", str(tmp_path / "o"), "--step", "buckets", "--num-shards", "2")
    assert r.returncode == 2 and "signature shards [0, 1] are not done" in r.stderr
