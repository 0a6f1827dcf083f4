"""recipes/slurm/pipeline.sh: the whole lifecycle as chained SLURM jobs (.ci/run starts a local SLURM;
the SLURM tests skip where it is absent). One tiny chain on a subset of data/sample runs once per
module; the failure case and the resubmission reuse its artifacts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
import zstandard

from tests.conftest import REPO, llmctl
from tests.integration.test_slurm import requires_slurm, wait_for

PIPELINE = REPO / "recipes" / "slurm" / "pipeline.sh"
STAGES = ["clean", "dedup", "tokenize", "pretrain", "sft", "rm", "ppo", "dpo", "quantize", "eval"]

# Every stage a few steps on a 2-layer, 64-wide model: the chain's cost is mostly starting Python.
TINY = {
    "tokenize": {"tokenizer": {"model": "bpe", "vocab_size": 512, "min_frequency": 2}},
    "pretrain": {
        "model": {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "seq_length": 64},
        "optim": {"lr": 0.003, "warmup_steps": 1},
        "train": {"steps": 4, "micro_batch_size": 4, "global_batch_size": 4, "log_interval": 2,
                  "eval_interval": 4, "save_interval": 4},
    },
    "sft": {
        "data": {"max_length": 64, "held_out": 4, "mix": {"max_examples": 40}},
        "train": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 2, "device": "cpu"},
    },
    "rm": {
        "data": {"max_length": 64, "held_out": 4},
        "train": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 2, "eval_batch_size": 8,
                  "device": "cpu"},
    },
    "dpo": {
        "data": {"max_length": 64, "held_out": 4},
        "train": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 2, "eval_batch_size": 8,
                  "device": "cpu"},
    },
    "ppo": {
        "data": {"held_out": 4, "max_prompt_length": 48},
        "ppo": {"total_episodes": 8, "batch_size": 4, "num_mini_batches": 1, "num_ppo_epochs": 1,
                "response_length": 8, "sample_every": 2, "samples": 1, "eval_batch_size": 4, "device": "cpu"},
    },
    "quantize": {
        "method": "gptq", "bits": 4, "group_size": 32, "keep_fp": [r"mlp\.down_proj"], "batch_size": 8,
        "calibration": {"samples": 8, "seq_len": 64, "held_out_docs": 0.2, "held_out_windows": 4},
        "report": {"compare_rtn": False, "layer_errors": False, "generate_tokens": 4},
    },
    "eval": {"tasks": ["capitals", "sotu-quotes-ppl"], "limit": 4, "generation": {"max_new_tokens": 4}},
}  # fmt: skip


def raw_subset(out: Path) -> Path:
    """A few documents of each data/sample source, as raw files clean reads (two shards' worth)."""
    (out / "python-docs").mkdir(parents=True)
    for name, n in [("sotu", 6), ("spamassassin", 40), ("fortunes", 20)]:
        with open(REPO / "data" / "sample" / f"{name}.jsonl.zst", "rb") as f:
            lines = zstandard.ZstdDecompressor().stream_reader(f).read().decode().splitlines()
        (out / f"{name}.jsonl").write_text("\n".join(lines[:n]) + "\n")
    for doc in ["tutorial__index.txt", "faq__installed.txt"]:
        shutil.copy(REPO / "data" / "sample" / "python-docs" / doc, out / "python-docs" / doc)
    return out


def recipes(out: Path, **replace: dict) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    args = []
    for stage, cfg in {**TINY, **replace}.items():
        (out / f"{stage}.yaml").write_text(yaml.safe_dump(cfg))
        args.append(f"{stage}={out / stage}.yaml")
    return args


def pipeline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "PYTHON": sys.executable,
        "LLMCTL": f"{sys.executable} -m llmctl.cli",
        "LLMCTL_QUIET": "1",
        "SHARDS": "2",
        "SBATCH_OPTS": "--cpus-per-task=1 --mem=3G",
        **(env or {}),
    }
    cmd = ["bash", str(PIPELINE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=120)


def jobs(runs: Path) -> dict[str, str]:
    lines = (runs / "pipeline.jobs").read_text().splitlines()
    return dict(line.split() for line in lines if not line.startswith("#"))


def logs(runs: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text()[-2000:]}" for p in sorted((runs / "logs").glob("*.out")))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The whole chain once, on the local SLURM: (RUNS_DIR, pipeline.sh's output, the raw files)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    raw = raw_subset(tmp / "raw")
    runs = tmp / "runs"
    r = pipeline(str(runs), *recipes(tmp / "recipes"), env={"RAW": str(raw)})
    assert r.returncode == 0, r.stderr
    wait_for(jobs(runs)["pipeline"], timeout=1800)
    return runs, r.stdout, raw


@requires_slurm
@pytest.mark.slurm
@pytest.mark.slow
def test_the_chain_builds_every_stage_and_a_resubmission_is_a_no_op(chain, tmp_path: Path):
    runs, out, raw = chain
    submitted = jobs(runs)
    # one job per stage (clean and the dedup steps as arrays), then the report job
    assert list(submitted) == ["clean", "dedup-signatures", "dedup-buckets", *STAGES[1:], "pipeline"], out
    report = next((runs / "logs").glob("pipeline-*.out")).read_text()
    assert "pipeline: every stage is done" in report, logs(runs)
    for stage in STAGES:
        assert (runs / stage / "manifest.json").is_file(), logs(runs)
    m = json.loads((runs / "clean" / "manifest.json").read_text())
    assert m["metrics"]["num_shards"] == 2  # the array's tasks, merged into one artifact
    # the eval's lineage walks back through quantize, dpo, sft, pretrain, tokenize, dedup, clean to raw
    r = llmctl("lineage", str(runs / "eval"))
    assert r.returncode == 0, r.stderr
    for stage in STAGES[:-1]:
        assert str(runs / stage) in r.stdout, r.stdout
    assert re.search(rf"{re.escape(str(raw))} +dir +ok +files=5", r.stdout), r.stdout  # the raw text
    # the same command again: every stage is done, nothing is submitted
    before = {s: (runs / s / "manifest.json").stat().st_mtime_ns for s in STAGES}
    again = pipeline(str(runs), *recipes(tmp_path / "recipes"), env={"RAW": str(raw)})
    assert again.returncode == 0, again.stderr
    assert "every stage is done; nothing submitted" in again.stdout
    for stage in STAGES:
        line = rf"^{stage} +done +{re.escape(str(runs / stage))}/manifest.json$"
        assert re.search(line, again.stdout, re.M), again.stdout
    assert set(jobs(runs).values()) == {"done"}
    assert before == {s: (runs / s / "manifest.json").stat().st_mtime_ns for s in STAGES}
    st = subprocess.run(["bash", str(PIPELINE), "--status", str(runs)], capture_output=True, text=True)
    assert st.returncode == 0 and st.stdout.endswith("pipeline: every stage is done\n"), st.stdout


@requires_slurm
@pytest.mark.slurm
@pytest.mark.slow
def test_a_failed_stage_cancels_the_stages_after_it_and_the_log_names_it(chain, tmp_path: Path):
    """quantize fails (a recipe with an unknown key): eval is cancelled, the last job's log says so."""
    runs0, _, raw = chain
    runs = tmp_path / "runs"
    shutil.copytree(runs0, runs, ignore=shutil.ignore_patterns("quantize", "eval", "logs", "pipeline.jobs"))
    bad = {"method": "gptq", "bits": 4, "not_a_key": 1}
    r = pipeline(str(runs), *recipes(tmp_path / "recipes", quantize=bad), env={"RAW": str(raw)})
    assert r.returncode == 0, r.stderr
    assert list(jobs(runs)) == [*STAGES[:8], "quantize", "eval", "pipeline"]
    assert [s for s, j in jobs(runs).items() if j != "done"] == ["quantize", "eval", "pipeline"], r.stdout
    wait_for(jobs(runs)["pipeline"], timeout=600)
    report = next((runs / "logs").glob("pipeline-*.out")).read_text()
    assert "pipeline: FAILED at stage quantize" in report and "cancelled: eval" in report, logs(runs)
    assert re.search(r"^eval +CANCELLED", report, re.M), report
    qlog = next((runs / "logs").glob("quantize-*.out")).read_text()
    assert "unknown key 'not_a_key'" in qlog, qlog
    assert not (runs / "quantize").exists() and not (runs / "eval").exists()
    st = subprocess.run(["bash", str(PIPELINE), "--status", str(runs)], capture_output=True, text=True)
    assert st.returncode == 1 and "FAILED at stage quantize" in st.stdout, st.stdout


# ---------------------------------------------------------------- no SLURM needed


def test_dry_run_chains_the_stages_and_skips_the_done_ones(tmp_path: Path):
    runs = tmp_path / "runs"
    r = pipeline("--dry-run", str(runs))
    assert r.returncode == 0, r.stderr
    cmds = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in r.stderr.splitlines()}
    ids = dict(re.findall(r"^(\S+) +dry-run +job (\d+)$", r.stdout, re.M))
    dep = {s: set(re.search(r"--dependency=after\w+:(\S+)", cmds[i]).group(1).split(":")) if "--dependency"
           in cmds[i] else set() for s, i in ids.items()}  # fmt: skip
    assert dep["clean"] == set() and "--array=0-1" in cmds[ids["clean"]]
    assert dep["dedup-buckets"] == {ids["dedup-signatures"]} and dep["tokenize"] == {ids["dedup"]}
    assert dep["ppo"] == {ids["sft"], ids["rm"]} and dep["quantize"] == {ids["dpo"], ids["dedup"]}
    assert dep["pipeline"] == {i for s, i in ids.items() if s != "pipeline"}
    for s, i in ids.items():
        assert "--requeue" in cmds[i] and f"--output={runs}/logs/" in cmds[i]
        if s != "pipeline":
            assert "--kill-on-invalid-dep=yes" in cmds[i]
    assert not runs.exists()  # a dry run writes nothing
    # clean and dedup done: the chain starts at tokenize, with nothing to wait for
    for s in ("clean", "dedup"):
        (runs / s).mkdir(parents=True)
        (runs / s / "manifest.json").write_text("{}")
    r = pipeline("--dry-run", str(runs))
    assert re.search(r"^clean +done", r.stdout, re.M) and re.search(r"^dedup +done", r.stdout, re.M)
    first = r.stderr.splitlines()[0]
    assert "llmctl-tokenize" in first and "--dependency" not in first


def test_pipeline_refuses_an_unknown_stage_or_a_missing_recipe(tmp_path: Path):
    r = pipeline(str(tmp_path / "runs"), f"pretrian={PIPELINE}")
    assert r.returncode == 2 and r.stderr.startswith("pipeline.sh: unknown stage 'pretrian'"), r.stderr
    r = pipeline(str(tmp_path / "runs"), "sft=nope.yaml")
    assert r.returncode == 2 and r.stderr.strip() == "pipeline.sh: sft: recipe nope.yaml not found"
    assert not (tmp_path / "runs").exists()
