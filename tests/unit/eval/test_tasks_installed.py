"""Named eval tasks ship inside the package: a non-editable install finds them without a checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl.eval import tasks

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import json, llmctl.eval.tasks as t
loaded = t.load_tasks(t.available(), limit=None, num_fewshot=None, seed=0, text_field="text")
print(json.dumps({"dir": str(t.TASK_DIR), "available": t.available(),
                  "items": {x.name: len(x.items) for x in loaded},
                  "sources": sorted({str(x.source) for x in loaded})}))
"""


def test_checkout_ships_every_task_with_its_data():
    names = tasks.available()
    assert {"arith", "arith-cot", "capitals", "sotu-quotes", "sotu-quotes-ppl"} <= set(names)
    for task in tasks.load_tasks(names, limit=None, num_fewshot=None, seed=0, text_field="text"):
        for f in task.files():  # nothing a shipped task reads lies outside the package
            assert f.resolve().is_relative_to(tasks.TASK_DIR), f


@pytest.mark.slow  # ~30 s: pip builds and installs the package
def test_non_editable_install_finds_the_tasks(tmp_path):
    # Build from a copy, so the checkout gets no build/ or egg-info; install into a plain target
    # directory (no venv), then import from there alone: no src/ on the path, cwd elsewhere.
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    r = subprocess.run([*pip, "--target", str(target), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shipped = sorted(p.name for p in (target / "llmctl/eval/tasks_data").iterdir())
    assert shipped == sorted(p.name for p in tasks.TASK_DIR.iterdir() if p.suffix in (".yaml", ".jsonl"))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["dir"]).is_relative_to(target)
    assert got["available"] == tasks.available()
    assert all(Path(s).is_relative_to(target) for s in got["sources"]), got["sources"]
    assert got["items"]["capitals"] == 40 and got["items"]["sotu-quotes"] == 12
