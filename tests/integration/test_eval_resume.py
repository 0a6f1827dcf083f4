"""`llmctl eval --resume` (issue 13): a killed run continues per (model, task); the tasks it
finished are read back, and the results equal an uninterrupted run's. Within a large task (issue
20) it continues per chunk of items."""

from __future__ import annotations

import json

import pytest

from tests.conftest import llmctl
from tests.fixtures import corpus
from tests.fixtures.kill import killed
from tests.fixtures.models import tiny_llama

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_eval_killed_after_one_task_and_two_chunks_resumes_the_rest(model, tmp_path):
    """Two tasks of 10 texts in chunks of 4: killed after task a and 2 of b's 3 chunks, the resumed
    run reads a back, reuses b's 2 chunks, scores the third, and equals an uninterrupted run."""
    from llmctl import artifacts

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    prose = corpus.prose(20)
    a.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(prose[:10])))
    b.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(prose[10:])))
    args = ["eval", str(model), "--tasks", f"perplexity:{a},perplexity:{b}", "--set", "chunk_items=4"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert llmctl(*args, "--out", str(ref)).returncode == 0
    # chunk writes: a's 3, then b's first 2
    assert killed("llmctl.eval.chunks:_write", "after", 5, *args, "--out", str(out)) == -9
    staged = artifacts.staging_dir(out) / "items" / "model"
    assert (staged / "a.jsonl").is_file() and not (staged / "a.chunks").exists()
    assert sorted(p.name for p in (staged / "b.chunks").iterdir()) == ["00000.jsonl", "00001.jsonl"]
    r = llmctl(*args, "--out", str(out), "--resume", env={"LLMCTL_QUIET": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("scored before the interruption; reusing") == 1  # task a, read back
    assert "b: 2 of 3 chunks scored before the interruption" in r.stderr
    scores = lambda d: json.loads((d / "results.json").read_text())["scores"]  # noqa: E731
    assert scores(out) == scores(ref)
    for t in ("a", "b"):
        assert (out / f"items/model/{t}.jsonl").read_text() == (ref / f"items/model/{t}.jsonl").read_text()
    assert not (out / "items/model/b.chunks").exists()
