"""`llmctl clean` end to end: accounting on a defect corpus, determinism, shards, strict, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llmctl import artifacts, config
from llmctl.clean import CleanConfig, run
from llmctl.formats.documents import read_shards
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

RECIPE = REPO / "recipes" / "clean" / "default.yaml"
EN_ONLY = ["--set", "language.languages=[en]"]


@pytest.fixture(scope="module")
def defects(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    expected = corpus.build(root / "in")
    return root / "in", expected


def test_every_record_is_accounted_for(defects, tmp_path):
    src, expected = defects
    out = tmp_path / "out"
    r = llmctl("clean", str(src), "--out", str(out), "--config", str(RECIPE), *EN_ONLY, "--workers", "2")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    kept = list(read_shards(out / "data"))
    rejected = list(read_shards(out / "rejected"))
    assert m["kept_docs"] == len(kept) == expected["kept"]
    assert m["rejected_docs"] == len(rejected)
    assert m["kept_docs"] + m["rejected_docs"] == m["input_docs"] == 21
    assert m["rejected"] == {k: v for k, v in expected.items() if k != "kept"}
    assert sorted(r["reason"] for r in rejected) == sorted(
        reason for reason, n in m["rejected"].items() for _ in range(n)
    )
    by_id = {r["id"]: r for r in kept}
    assert by_id["good-0"]["meta"]["source"] == "sotu" and by_id["good-0"]["meta"]["nested"] == {"a": [1, 2]}
    assert by_id["good-0"]["meta"]["language"] == "en"
    pii = by_id["pii"]["text"]
    assert "<EMAIL>" in pii and "<PHONE>" in pii and "<IP>" in pii and "jane.doe" not in pii
    assert m["pii_replaced"] == {"email": 1, "ip": 1, "phone": 1}
    assert by_id["html"]["meta"]["html_extracted"] and "<p>" not in by_id["html"]["text"]
    assert "Home | About" not in by_id["html"]["text"]  # navigation dropped
    bad = [r for r in rejected if r["reason"] == "malformed"]
    assert {r["meta"]["file"] for r in bad} == {"in/a.jsonl", "in/c.jsonl.gz", "in/d.jsonl.zst"}
    assert all(r["meta"]["line"] > 0 for r in bad)


def test_output_is_identical_whatever_the_worker_count(defects, tmp_path):
    src, _ = defects
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        cfg = config.load(
            CleanConfig, RECIPE, ["language.languages=[en]", f"workers={workers}", "chunk_size=3"]
        )
        run(config.with_run(cfg, inputs=[src], out=out, recipe_dir=RECIPE.parent))
        outs.append(out)
    for sub in ("data", "rejected"):
        a = sorted((outs[0] / sub).iterdir())
        b = sorted((outs[1] / sub).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b, strict=True))


def test_shards_then_merge_equal_one_run(defects, tmp_path):
    src, expected = defects
    whole = tmp_path / "whole"
    assert llmctl("clean", str(src), "--out", str(whole), "-c", str(RECIPE), *EN_ONLY).returncode == 0
    sharded = tmp_path / "sharded"
    for i in (2, 0):  # out of order; shard 1 missing
        env = {"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "3"}
        r = llmctl("clean", str(src), "--out", str(sharded), "-c", str(RECIPE), *EN_ONLY, env=env)
        assert r.returncode == 0, r.stderr
        assert not sharded.exists()
    r = llmctl(
        "clean", str(src), "--out", str(sharded), "-c", str(RECIPE), *EN_ONLY, "--merge", "--num-shards", "3"
    )
    assert r.returncode == 2 and "shards 1 of 3 are not done" in r.stderr
    r = llmctl(
        "clean",
        str(src),
        "--out",
        str(sharded),
        "-c",
        str(RECIPE),
        *EN_ONLY,
        "--num-shards",
        "3",
        "--shard-index",
        "1",
    )  # the last shard merges
    assert r.returncode == 0, r.stderr
    ids = lambda d, sub: sorted(x["id"] for x in read_shards(d / sub))  # noqa: E731
    assert ids(sharded, "data") == ids(whole, "data")
    assert ids(sharded, "rejected") == ids(whole, "rejected")
    m = artifacts.Manifest.read(sharded).metrics
    assert m["num_shards"] == 3 and m["kept_docs"] == expected["kept"]


def test_strict_stops_at_the_first_malformed_record(defects, tmp_path):
    src, _ = defects
    r = llmctl("clean", str(src / "a.jsonl"), "--out", str(tmp_path / "o"), "--strict", "--workers", "1")
    assert r.returncode == 2
    assert "a.jsonl:4: malformed record (invalid JSON" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_second_run_is_a_no_op_and_lineage_is_clean(defects, tmp_path):
    src, _ = defects
    out = tmp_path / "o"
    assert llmctl("clean", str(src), "--out", str(out), *EN_ONLY).returncode == 0
    before = (out / "manifest.json").read_bytes()
    r = llmctl("clean", str(src), "--out", str(out), *EN_ONLY, env={"LLMCTL_QUIET": "0"})
    assert r.returncode == 0 and "up to date" in r.stderr
    assert (out / "manifest.json").read_bytes() == before
    r = llmctl(
        "clean", str(src), "--out", str(out), "--set", "quality.min_words=10", env={"LLMCTL_QUIET": "0"}
    )
    assert "config differs" in r.stderr and "quality.min_words" in r.stderr
    r = llmctl("lineage", str(out))
    assert r.returncode == 0 and "ok" in r.stdout
    (src / "e.jsonl").write_text('{"text": "new"}\n')  # the raw input changes
    r = llmctl("lineage", str(out))
    assert r.returncode == 1 and "CHANGED" in r.stdout
    (src / "e.jsonl").write_bytes(b"")


def test_long_single_line_is_rejected_not_fatal(tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "w") as f:
        f.write(json.dumps({"id": "huge", "text": "word " * 1_000_000}) + "\n")
        f.write(json.dumps({"id": "small", "text": "tiny"}) + "\n")
    r = llmctl("clean", str(big), "--out", str(tmp_path / "o"), "--set", "max_doc_chars=1000000")
    assert r.returncode == 0, r.stderr
    m = artifacts.Manifest.read(tmp_path / "o").metrics
    assert m["rejected"] == {"too_long": 1, "language": 1}  # "tiny" is too short to identify


@pytest.mark.slow
def test_100mb_single_line(tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "w") as f:
        f.write('{"id": "huge", "text": "' + "abcdefghi " * 10_000_000 + '"}\n')
    r = llmctl("clean", str(big), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert artifacts.Manifest.read(tmp_path / "o").metrics["rejected"] == {"too_long": 1}


@pytest.mark.slow
def test_kill_9_leaves_no_half_artifact_and_resume_completes(tmp_path):
    """kill -9 at several moments: never a DIR without a valid manifest; a rerun completes."""
    src = tmp_path / "in"
    src.mkdir()
    passages = corpus.prose(20)
    for k in range(8):
        with open(src / f"part{k}.jsonl", "w") as f:
            for i in range(300):
                f.write(json.dumps({"id": f"{k}-{i}", "text": passages[(k + i) % 20]}) + "\n")
    reference = tmp_path / "ref"
    assert llmctl("clean", str(src), "--out", str(reference), "--workers", "1").returncode == 0
    out = tmp_path / "out"
    env = {**os.environ, "LLMCTL_QUIET": "1"}
    for delay in (0.5, 1.5, 3.0):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmctl.cli",
                "clean",
                str(src),
                "--out",
                str(out),
                "--workers",
                "1",
                "--num-shards",
                "1",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():  # finished before the kill: must be complete and intact
            m = artifacts.Manifest.read(out)
            assert all(artifacts.sha256_file(out / o["path"]) == o["sha256"] for o in m.outputs)
            break
        assert not (out / "manifest.json").exists()
    r = llmctl("clean", str(src), "--out", str(out), "--workers", "1", "--resume")
    assert r.returncode == 0, r.stderr
    for sub in ("data", "rejected"):
        for p in (reference / sub).iterdir():
            assert (out / sub / p.name).read_bytes() == p.read_bytes()
    assert not artifacts.staging_dir(out).exists()
