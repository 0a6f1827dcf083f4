"""recipes/slurm/*.sbatch on a real single-node SLURM (.ci/run starts one; skipped where absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmctl import artifacts
from llmctl.formats.documents import read_shards
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

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


def _sbatch(*args: str, env_extra: dict | None = None) -> str:
    import os

    env = {
        **os.environ,
        "LLMCTL": f"{sys.executable} -m llmctl.cli",
        "PYTHON": sys.executable,
        **(env_extra or {}),
    }
    r = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


@requires_slurm
def test_dedup_chained_jobs(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    passages = corpus.prose(30)
    for k in range(2):
        with open(src / f"p{k}.jsonl", "w") as f:
            for i, p in enumerate(passages):
                f.write(
                    f'{{"id": "{k}-{i}", "text": {__import__("json").dumps(p)}}}\n'
                )  # file 1 repeats file 0
    out = tmp_path / "out"
    script = str(REPO / "recipes/slurm/dedup.sbatch")
    common = ["--cpus-per-task=1", "--mem=1G", f"--output={tmp_path}/dedup-%A_%a.out"]
    sig = _sbatch("--array=0-1", *common, script, str(src), str(out), env_extra={"STEP": "signatures"})
    bkt = _sbatch(
        "--array=0-1",
        f"--dependency=afterok:{sig}",
        *common,
        script,
        str(src),
        str(out),
        env_extra={"STEP": "buckets"},
    )
    fin = _sbatch(
        f"--dependency=afterok:{bkt}",
        *common,
        script,
        str(src),
        str(out),
        env_extra={"STEP": "finish", "NUM_SHARDS": "2"},
    )
    wait_for(fin)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("dedup-*.out")))
    assert artifacts.is_complete(out), logs
    m = artifacts.Manifest.read(out).metrics
    assert m["rejected"] == {"exact_duplicate": 30} and m["kept_docs"] == 30
    assert sorted(x["id"] for x in read_shards(out / "data")) == sorted(f"0-{i}" for i in range(30))


@requires_slurm
def test_pretrain_srun_torchrun_rendezvous(tmp_path: Path):
    """pretrain.sbatch: srun + torchrun with a c10d rendezvous from SLURM_* (one node, 2 ranks)."""
    src = tmp_path / "docs.jsonl"
    with open(src, "w") as f:
        for i, p in enumerate(corpus.prose(30)):
            f.write(f'{{"id": "{i}", "text": {__import__("json").dumps(p)}}}\n')
    tok = tmp_path / "tok"
    assert (
        llmctl("tokenize", str(src), "--out", str(tok), "--set", "tokenizer.vocab_size=512").returncode == 0
    )
    out = tmp_path / "pt"
    extra = (
        "--set train.steps=12 --set model.seq_length=64 --set optim.warmup_steps=2 "
        "--set train.save_interval=6 --set train.eval_interval=12 --set parallel.tensor=2"
    )
    job = _sbatch(
        "--cpus-per-task=2",
        "--mem=4G",
        f"--output={tmp_path}/pt-%j.out",
        str(REPO / "recipes/slurm/pretrain.sbatch"),
        str(tok),
        str(out),
        str(REPO / "recipes/pretrain/tiny.yaml"),
        "2",
        env_extra={"EXTRA": extra, "LOGLEVEL": "INFO"},  # torchrun's agent logs its rendezvous result
    )
    wait_for(job, timeout=600)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("pt-*.out")))
    assert artifacts.is_complete(out), logs[-3000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["layout"] == {"tp": 2, "pp": 1, "dp": 1} and m["steps"] == 12
    assert m["final_train_loss"] < m["first_train_loss"] and m["hf_max_abs_logit_diff"] <= 1e-4
    # what torchrun reports after the c10d rendezvous (not the script's own echo): one node, two
    # ranks 0 and 1, world size 2
    assert "Rendezvous complete for workers" in logs, logs[-3000:]
    assert "group_world_size=1" in logs and "local_ranks=[0, 1]" in logs
    assert "global_ranks=[0, 1]" in logs and "global_world_sizes=[2, 2]" in logs
    # and the losses rank 0 printed are the ones the artifact recorded
    printed = {int(k): float(v) for k, v in re.findall(r"step (\d+)/12 loss (\d+\.\d+)", logs)}
    recorded = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert 12 in printed and set(printed) <= {r["step"] for r in recorded}
    for r in recorded:
        if r["step"] in printed:
            assert printed[r["step"]] == pytest.approx(r["loss"], abs=1e-4)


@requires_slurm
def test_sft_srun_torchrun_two_ranks_match_a_local_run(tmp_path: Path):
    """posttrain.sbatch sft: srun + torchrun (c10d rendezvous from SLURM_*) with 2 ranks gives the
    artifact `llmctl sft --nproc 2` gives on the same data."""
    from tests.fixtures.models import tiny_chat_llama

    base = tiny_chat_llama(tmp_path / "base")
    chats = REPO / "tests" / "assets" / "sft" / "chitchat-240.jsonl"
    recipe = REPO / "recipes" / "sft" / "tiny.yaml"
    extra = "--set train.batch_size=4 --max-steps 6"
    out = tmp_path / "slurm"
    job = _sbatch(
        "--cpus-per-task=2",
        "--mem=4G",
        f"--output={tmp_path}/sft-%j.out",
        str(REPO / "recipes/slurm/posttrain.sbatch"),
        "sft",
        str(out),
        str(recipe),
        str(base),
        f"chat={chats}",
        env_extra={"EXTRA": extra, "NPROC_PER_NODE": "2", "LOGLEVEL": "INFO"},
    )
    wait_for(job, timeout=600)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("sft-*.out")))
    assert artifacts.is_complete(out), logs[-3000:]
    assert "Rendezvous complete for workers" in logs and "global_world_sizes=[2, 2]" in logs, logs[-3000:]
    local = tmp_path / "local"
    r = llmctl(
        "sft",
        str(base),
        f"chat={chats}",
        "--out",
        str(local),
        "-c",
        str(recipe),
        "--nproc",
        "2",
        *extra.split(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = artifacts.Manifest.read(out), artifacts.Manifest.read(local)
    assert got.config == want.config and got.metrics["steps"] == 6
    weights = lambda d: artifacts.sha256_file(d / "hf" / "model.safetensors")  # noqa: E731
    assert weights(out) == weights(local)


@requires_slurm
def test_posttrain_sbatch_runs_rm_and_a_resubmission_is_a_no_op(tmp_path: Path):
    """The same script trains a reward model (one rank); submitting it again finds the finished
    artifact and leaves it as it was (the job chain a time limit makes is safe)."""
    from tests.fixtures.models import tiny_chat_llama
    from tests.integration.test_rm import synthetic_pairs

    base = tiny_chat_llama(tmp_path / "base")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs()[:64]))
    out = tmp_path / "rm"
    args = [str(REPO / "recipes/slurm/posttrain.sbatch"), "rm", str(out), str(REPO / "recipes/rm/tiny.yaml")]
    env = {"EXTRA": "--max-steps 2 --set data.held_out=8", "NPROC_PER_NODE": "1"}
    for i in range(2):
        job = _sbatch("--cpus-per-task=1", "--mem=4G", f"--output={tmp_path}/rm-{i}-%j.out", *args,
                      str(base), f"prefs={pairs}", env_extra=env)  # fmt: skip
        wait_for(job, timeout=600)
        logs = (next(tmp_path.glob(f"rm-{i}-*.out"))).read_text()
        assert artifacts.is_complete(out), logs[-3000:]
        if i == 0:
            first = artifacts.sha256_file(out / "manifest.json")
            assert artifacts.Manifest.read(out).metrics["steps"] == 2
    assert artifacts.sha256_file(out / "manifest.json") == first
    assert "up to date" in logs, logs[-2000:]


def test_posttrain_sbatch_refuses_an_unknown_stage(tmp_path: Path):
    r = subprocess.run(["bash", str(REPO / "recipes/slurm/posttrain.sbatch"), "pretrain", "o", "r.yaml", "x"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "unknown stage 'pretrain'" in r.stderr
