"""kill -9 at chosen points of tokenize, clean and dedup, then --resume: the artifact equals an
uninterrupted run's, byte for byte (issues 12 and 13).

The kill is placed, not timed: the CLI runs under a wrapper that patches one function to SIGKILL
its own process after (or before) its N-th call, so each point is hit on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl import artifacts
from tests.conftest import llmctl
from tests.fixtures import corpus
from tests.fixtures.kill import killed

pytestmark = pytest.mark.slow


def same_artifact(a: Path, b: Path) -> None:
    ma, mb = artifacts.Manifest.read(a), artifacts.Manifest.read(b)
    assert [(o["path"], o["sha256"]) for o in ma.outputs] == [(o["path"], o["sha256"]) for o in mb.outputs]
    for o in mb.outputs:
        assert artifacts.sha256_file(b / o["path"]) == o["sha256"]
    assert not artifacts.staging_dir(b).exists()


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("kill") / "in"
    src.mkdir()
    passages = corpus.prose(30)
    for k in range(3):
        with open(src / f"part{k}.jsonl", "w") as f:
            for i in range(60):
                f.write(json.dumps({"id": f"{k}-{i}", "text": passages[(k * 7 + i) % 30]}) + "\n")
    return src


TOKENIZE = ["--set", "tokenizer.vocab_size=400", "--set", "chunk_size=16", "--workers", "2"]
TOKENIZE_POINTS = {
    "after the tokenizer is saved and data/ made": (
        "llmctl.tokenize.indexed:IndexedWriter",
        "after",
        1,
    ),
    # 180 documents in chunks of 16: 12 writes
    "half-way through encoding": ("llmctl.tokenize.indexed:IndexedWriter.add_documents", "after", 6),
    "before the rename": ("llmctl.artifacts:_fsync_dir", "after", 1),
}


@pytest.fixture(scope="module")
def tokenize_ref(docs, tmp_path_factory) -> Path:
    ref = tmp_path_factory.mktemp("ref") / "tok"
    r = llmctl("tokenize", str(docs), "--out", str(ref), *TOKENIZE)
    assert r.returncode == 0, r.stderr
    return ref


@pytest.mark.parametrize("point", sorted(TOKENIZE_POINTS))
def test_tokenize_killed_then_resumed_equals_an_uninterrupted_run(docs, tokenize_ref, tmp_path, point):
    out = tmp_path / "tok"
    target, when, n = TOKENIZE_POINTS[point]
    assert killed(target, when, n, "tokenize", str(docs), "--out", str(out), *TOKENIZE) == -9
    assert not artifacts.is_complete(out) and artifacts.staging_dir(out).exists()
    r = llmctl("tokenize", str(docs), "--out", str(out), *TOKENIZE, "--resume")
    assert r.returncode == 0, r.stderr  # was: FileExistsError on .tok.staging/data
    same_artifact(tokenize_ref, out)


def test_tokenize_resume_retrains_a_tokenizer_from_other_inputs(docs, tokenize_ref, tmp_path):
    """A tokenizer saved from other inputs is not reused."""
    out = tmp_path / "tok"
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(corpus.prose(8)))
    )
    assert (
        killed(
            "llmctl.tokenize.tokenizer:save", "after", 1, "tokenize", str(other), "--out", str(out), *TOKENIZE
        )
        == -9
    )
    r = llmctl("tokenize", str(docs), "--out", str(out), *TOKENIZE, "--resume")
    assert r.returncode == 0, r.stderr
    same_artifact(tokenize_ref, out)


# (stage, kill point) -> (function to kill at, before/after, which call); the stage's flags
KILL_POINTS = {
    ("clean", "after the shard is done"): ("llmctl.shards:finish", "after", 1),
    ("clean", "half-way through the merge"): ("llmctl.clean.stage:os.link", "after", 1),
    ("clean", "before the rename"): ("llmctl.artifacts:_fsync_dir", "after", 1),
    ("dedup", "after the signatures"): ("llmctl.shards:finish", "after", 1),
    ("dedup", "in the filter step"): ("llmctl.formats.documents:ShardWriter.write_bytes", "after", 5),
    ("dedup", "before the rename"): ("llmctl.artifacts:_fsync_dir", "after", 1),
}
FLAGS = {"clean": ["--workers", "2", "--set", "chunk_size=16"], "dedup": ["--workers", "2"]}


@pytest.mark.parametrize("stage,point", sorted(KILL_POINTS))
def test_data_stage_killed_then_resumed_equals_an_uninterrupted_run(docs, tmp_path, stage, point):
    ref, out = tmp_path / "ref", tmp_path / "out"
    flags = FLAGS[stage]
    assert llmctl(stage, str(docs), "--out", str(ref), *flags).returncode == 0
    target, when, n = KILL_POINTS[(stage, point)]
    assert killed(target, when, n, stage, str(docs), "--out", str(out), *flags) == -9
    r = llmctl(stage, str(docs), "--out", str(out), *flags, "--resume")
    assert r.returncode == 0, r.stderr  # also: no orphaned worker holds the lock
    same_artifact(ref, out)
