"""recipes/slurm/*.sbatch on a real single-node SLURM (.ci/run starts one; skipped where absent)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl import artifacts
from llmctl.documents import read_shards
from tests.conftest import REPO, llmctl
from tests.unit.clean import corpus

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _slurm_ready() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mixed"))


requires_slurm = pytest.mark.skipif(not _slurm_ready(), reason="no SLURM with an idle node here")


def wait_for(job: str, timeout: float = 300) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
        if r.returncode == 0 and not r.stdout.strip():
            return
        time.sleep(0.5)
    subprocess.run(["scancel", job])
    raise TimeoutError(f"SLURM job {job} still running after {timeout}s")


@requires_slurm
def test_clean_job_array_merges_into_one_artifact(tmp_path: Path):
    src = tmp_path / "in"
    corpus.build(src)
    recipe = REPO / "recipes" / "clean" / "default.yaml"
    out = tmp_path / "out"
    r = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-2",
            "--cpus-per-task=1",
            "--mem=1G",
            f"--output={tmp_path}/clean-%A_%a.out",
            str(REPO / "recipes/slurm/clean-array.sbatch"),
            str(src),
            str(out),
            str(recipe),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ, "LLMCTL": f"{sys.executable} -m llmctl.cli"},
    )
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    wait_for(job)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("clean-*.out")))
    assert artifacts.is_complete(out), logs
    m = artifacts.Manifest.read(out)
    assert m.metrics["num_shards"] == 3
    assert m.metrics["kept_docs"] + m.metrics["rejected_docs"] == m.metrics["input_docs"]
    local = tmp_path / "local"
    assert llmctl("clean", str(src), "--out", str(local), "--config", str(recipe)).returncode == 0
    ids = lambda d: sorted(x["id"] for x in read_shards(d / "data"))  # noqa: E731
    assert ids(out) == ids(local)
