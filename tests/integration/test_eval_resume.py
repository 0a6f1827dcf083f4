"""`llmctl eval --resume` (issue 13): a killed run continues per (model, task); the tasks it
finished are read back, and the results equal an uninterrupted run's."""

from __future__ import annotations

import json

import pytest

from tests.conftest import llmctl
from tests.fixtures import corpus
from tests.fixtures.models import tiny_llama
from tests.integration.test_kill_resume import killed

pytestmark = pytest.mark.slow


def test_eval_killed_after_one_task_resumes_the_rest(tmp_path):
    model = tiny_llama(tmp_path / "model")
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
