"""Two runs on one --out (issue 13): one writes, the other exits 2 at once naming it; shards of one
sharded run still share their staging directory; nothing commits a wrong hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl import artifacts, locks
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

HOLD = """
import sys, time
from pathlib import Path
from llmctl import artifacts
art = artifacts.begin("clean", Path(sys.argv[1]), config={}, inputs=[sys.argv[2]], shared=sys.argv[3] == "1")
(art.staging / "live.txt").write_text("being written")
print("holding", flush=True)
time.sleep(60)
"""


def _holder(out: Path, src: Path, shared: bool = False) -> subprocess.Popen:
    """A live run on `out`: begin() and then sleep, as a long stage would."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out), str(src), "1" if shared else "0"],
        cwd=REPO,
        env={**os.environ, "LLMCTL_QUIET": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "holding"
    return p


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    src = tmp_path / "docs.jsonl"
    with open(src, "w") as f:
        for i, text in enumerate(corpus.prose(40)):
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    return src


def test_second_run_exits_2_at_once_and_keeps_the_live_staging(docs, tmp_path):
    out = tmp_path / "out"
    holder = _holder(out, docs)
    try:
        t0 = time.perf_counter()
        r = llmctl("clean", str(docs), "--out", str(out))
        assert r.returncode == 2, r.stderr
        assert f"another llmctl run (pid {holder.pid}, started" in r.stderr and str(out) in r.stderr
        assert "Traceback" not in r.stderr and time.perf_counter() - t0 < 30
        # neither --resume nor --force may touch the live run's staging directory
        for flag in ("--resume", "--force"):
            r = llmctl("clean", str(docs), "--out", str(out), flag)
            assert r.returncode == 2 and "another llmctl run" in r.stderr
        assert (artifacts.staging_dir(out) / "live.txt").read_text() == "being written"
        # the shard tasks of a sharded run do not join an ordinary run's staging either
        r = llmctl("clean", str(docs), "--out", str(out), "--num-shards", "2", "--shard-index", "0")
        assert r.returncode == 2 and "another llmctl run" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    r = llmctl("clean", str(docs), "--out", str(out))  # the lock died with its holder
    assert r.returncode == 0, r.stderr
    assert artifacts.is_complete(out) and not locks.lock_path(out).exists()


def test_shards_share_the_lock_but_exclude_an_ordinary_run(docs, tmp_path):
    out = tmp_path / "out"
    shard = _holder(out, docs, shared=True)
    try:
        r = llmctl("clean", str(docs), "--out", str(out))
        assert r.returncode == 2 and "another llmctl run" in r.stderr
        other = _holder(out, docs, shared=True)  # a second shard task joins
        other.kill()
        other.wait()
    finally:
        shard.kill()
        shard.wait()


def test_two_concurrent_clean_runs_never_commit_a_corrupt_artifact(docs, tmp_path):
    """Start two real runs together: one commits an artifact whose every hash holds; the other
    exits 2 naming the run, or finds the artifact complete. Never a raw traceback."""
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        cmd = [sys.executable, "-m", "llmctl.cli", "clean", str(docs), "--out", str(out), "--workers", "1"]
        env = {**os.environ, "LLMCTL_QUIET": "1"}
        procs = [
            subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
        ]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        assert codes in ([0, 0], [0, 2]), results
        for rc, err in results:
            assert "Traceback" not in err and "Error:" not in err, err
            if rc == 2:
                assert "another llmctl run" in err
        m = artifacts.Manifest.read(out)
        for o in m.outputs:
            assert artifacts.sha256_file(out / o["path"]) == o["sha256"], o["path"]


def test_a_complete_artifact_is_not_replaced_by_a_concurrent_run_without_force(docs, tmp_path):
    out = tmp_path / "out"
    assert llmctl("clean", str(docs), "--out", str(out)).returncode == 0
    before = (out / "manifest.json").read_bytes()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "llmctl.cli", "clean", str(docs), "--out", str(out)],
            cwd=REPO,
            env={**os.environ, "LLMCTL_QUIET": "1"},
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert all(p.wait(timeout=300) in (0, 2) for p in procs)
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_two_concurrent_evals_one_writes_the_other_exits_2(docs, tmp_path):
    """Both evals used to exit 0, the second replacing the first's complete artifact."""
    from tests.fixtures.models import tiny_llama

    model = tiny_llama(tmp_path / "model")
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "llmctl.cli", "eval", str(model), "--out", str(out)]
    cmd += ["--tasks", f"perplexity:{docs}", "--limit", "20"]
    env = {**os.environ, "LLMCTL_QUIET": "0"}
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) in ([0, 0], [0, 2]), results
    for rc, err in results:
        assert rc == 2 and "another llmctl run" in err or rc == 0 and "Traceback" not in err
    if [rc for rc, _ in results] == [0, 0]:  # not concurrent after all: the later one found it done
        assert any("up to date" in err for _, err in results)
    m = artifacts.Manifest.read(out)
    assert all(artifacts.sha256_file(out / o["path"]) == o["sha256"] for o in m.outputs)
