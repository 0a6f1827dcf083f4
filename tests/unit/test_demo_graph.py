"""`make demo` reruns exactly the stages downstream of a changed recipe (issue 21): make's own
graph on the stages' manifest.json, checked with `make -n -W FILE` (what would run were FILE just
modified) on a runs directory of fresh, empty manifests. Nothing trains, nothing is installed:
STAMP points at a fresh file, so the venv set-up is up to date."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
STAGES = ["clean", "dedup", "tokenize", "pretrain", "sft", "rm", "ppo", "dpo", "quantize", "eval"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stage complete, all at one instant later than any file of the checkout."""
    root = tmp_path_factory.mktemp("demo-graph")
    now = time.time()
    for f in [root / "stamp", *(root / "runs" / s / "manifest.json" for s in STAGES)]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
        os.utime(f, (now, now))
    return root


def would_run(runs: Path, *touched: str) -> list[str]:
    """The stages `make -n demo` would run, in order, were the files `touched` just modified."""
    what_if = [arg for f in touched for arg in ("-W", f)]
    cmd = ["make", "-n", "demo", f"RUNS={runs / 'runs'}", f"STAMP={runs / 'stamp'}", *what_if]
    # not the flags of a `make test` this runs under (MAKEFLAGS carries its options and variables)
    env = {k: v for k, v in os.environ.items() if k not in MAKE_ENV}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = runs / "runs"
    # a stage's command line: `.venv/bin/llmctl STAGE ... --out RUNS/STAGE`
    return [m[1] for m in re.finditer(rf"llmctl (\w+) .*--out {re.escape(str(out))}/(\w+)", r.stdout)]


def test_make_demo_reruns_exactly_the_stages_downstream_of_a_touched_recipe(runs):
    assert would_run(runs) == []  # all up to date: the second `make demo` runs no stage
    assert would_run(runs, "recipes/rm/demo.yaml") == ["rm", "ppo", "eval"]  # the judge is the rm
    assert would_run(runs, "recipes/dpo/demo.yaml") == ["dpo", "quantize", "eval"]
    assert would_run(runs, "recipes/eval/demo.yaml") == ["eval"]
    assert would_run(runs, "recipes/sft/demo.yaml") == ["sft", "rm", "ppo", "dpo", "quantize", "eval"]
    assert would_run(runs, "recipes/clean/default.yaml") == STAGES
