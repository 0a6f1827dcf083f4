"""Issue 13, hangs and bounded resources: pathological input and settings end in seconds, with a
message, instead of running for hours or starting 100,000 processes. Every case has a timeout."""

from __future__ import annotations

import json
import time

import pytest

from llmctl import artifacts, parallel
from tests.conftest import llmctl
from tests.fixtures import corpus


def test_tokenize_skips_a_10mb_word_as_too_long(tmp_path):
    """One 10 MB string without a space took BPE past 300 s; it is now skipped and counted."""
    src = tmp_path / "docs.jsonl"
    with open(src, "w") as f:
        for p in corpus.prose(30):
            f.write(json.dumps({"text": p}) + "\n")
        f.write(json.dumps({"id": "blob", "text": "ab3" * 3_500_000}) + "\n")
    out = tmp_path / "tok"
    r = llmctl("tokenize", str(src), "--out", str(out), "--set", "tokenizer.vocab_size=300", timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = artifacts.Manifest.read(out).metrics["sources"]["corpus"]
    assert stats["documents"] == 30 and stats["too_long"] == 1 and stats["skipped"] == 1


def test_workers_are_capped_at_the_cpus_available(monkeypatch, capsys):
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel, "_capped", set())
    assert parallel.resolve_workers(100_000) == 2
    assert parallel.resolve_workers(100_000) == 2
    assert parallel.resolve_workers(0) == 2 and parallel.resolve_workers(1) == 1
    err = capsys.readouterr().err
    assert err.count("only 2 CPUs") == 1, err  # said once


def test_clean_with_100000_workers_runs_on_the_cpus_there_are(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": p}) + "\n" for p in corpus.prose(10)))
    r = llmctl("clean", str(src), "--out", str(tmp_path / "c"), "--workers", "100000", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("--workers 100000: only") == 1, r.stderr


def test_pretrain_without_a_loopback_interface_fails_in_seconds(tmp_path, monkeypatch):
    """192.0.2.1 (TEST-NET-1) is not on any local interface: binding it fails like a missing `lo`
    does, locally and without sending a packet."""
    from llmctl import config, launch
    from llmctl.pretrain import PretrainConfig, stage

    tok = tmp_path / "tok"
    (tok / "tokenizer").mkdir(parents=True)
    (tok / "blend.json").write_text("{}")
    monkeypatch.setattr(launch, "LOOPBACK", "192.0.2.1")
    started = []
    monkeypatch.setattr(stage, "_launch", lambda *a: started.append(a))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = config.load(PretrainConfig, None, [])
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="cannot bind a socket to 192.0.2.1.*loopback"):
        stage.run(config.with_run(cfg, inputs=[tok], out=tmp_path / "pt"))
    assert time.perf_counter() - t0 < 5
    assert not started, "a rank was started"
    assert not (tmp_path / "pt").exists() and not artifacts.staging_dir(tmp_path / "pt").exists()
