"""`llmctl eval --resume` (issue 13): a killed run continues per (model, task); the tasks it
finished are read back, and the results equal an uninterrupted run's. Within a large task (issue
20) it continues per chunk of items."""

from __future__ import annotations

import json

import pytest

from tests.conftest import llmctl
from tests.fixtures import corpus
from tests.fixtures.models import tiny_llama
from tests.integration.test_kill_resume import killed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_eval_killed_after_one_task_resumes_the_rest(model, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    prose = corpus.prose(20)
    a.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(prose[:10])))
    b.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(prose[10:])))
    args = ["eval", str(model), "--tasks", f"perplexity:{a},perplexity:{b}"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert llmctl(*args, "--out", str(ref)).returncode == 0
    assert killed("llmctl.eval.stage:_write_items", "after", 1, *args, "--out", str(out)) == -9
    r = llmctl(*args, "--out", str(out), "--resume", env={"LLMCTL_QUIET": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("scored before the interruption") == 1
    scores = lambda d: json.loads((d / "results.json").read_text())["scores"]  # noqa: E731
    assert scores(out) == scores(ref)


def test_eval_killed_within_a_task_resumes_from_the_last_chunk(model, tmp_path):
    from llmctl import artifacts

    args = ["eval", str(model), "--tasks", "capitals", "--limit", "10", "--set", "chunk_items=4"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert llmctl(*args, "--out", str(ref)).returncode == 0
    assert killed("llmctl.eval.chunks:_write", "after", 2, *args, "--out", str(out)) == -9
    chunks = artifacts.staging_dir(out) / "items" / "model" / "capitals.chunks"
    assert sorted(p.name for p in chunks.iterdir()) == ["00000.jsonl", "00001.jsonl"]
    r = llmctl(*args, "--out", str(out), "--resume", env={"LLMCTL_QUIET": "0"})
    assert r.returncode == 0, r.stderr
    assert "capitals: 2 of 3 chunks scored before the interruption" in r.stderr
    scores = lambda d: json.loads((d / "results.json").read_text())["scores"]  # noqa: E731
    assert scores(out) == scores(ref)
    items = "items/model/capitals.jsonl"
    assert (out / items).read_text() == (ref / items).read_text()
    assert (
        len((out / items).read_text().splitlines()) == 10
        and not (out / "items/model/capitals.chunks").exists()
    )
