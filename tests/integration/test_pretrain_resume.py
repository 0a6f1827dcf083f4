"""Pretrain resume (issue 13): the exit step always checkpoints, and a run killed before its first
checkpoint does not list its steps twice after --resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmctl import artifacts
from tests.conftest import llmctl
from tests.integration.test_pretrain import tokenized  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.slow
COMMON = ["--set", "train.steps=8", "--set", "train.save_interval=10", "--set", "train.eval_interval=8"]
COMMON += ["--set", "model.seq_length=64", "--set", "optim.warmup_steps=2"]


def steps(d) -> list[int]:
    return [json.loads(x)["step"] for x in (d / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stopped(tokenized, tmp_path_factory):  # noqa: F811
    """Runs stopped by train.exit_after_steps (exit 3), one per step count, each made once (a pretrain
    process imports torch and megatron-core): `stopped(5, tmp_path)` copies the staging directory of
    the run that stopped after step 5 to tmp_path/.pt.staging and returns tmp_path/pt."""
    made: dict[int, Path] = {}

    def copy(step: int, tmp_path: Path) -> Path:
        if step not in made:
            out = tmp_path_factory.mktemp(f"stopped{step}") / "pt"
            stop = ["--set", f"train.exit_after_steps={step}"]
            r = llmctl("pretrain", str(tokenized), "--out", str(out), *COMMON, *stop)
            assert r.returncode == 3, r.stderr[-3000:]
            made[step] = out
        out = tmp_path / "pt"
        shutil.copytree(artifacts.staging_dir(made[step]), artifacts.staging_dir(out))
        return out

    return copy


def test_exit_after_steps_checkpoints_at_the_exit_step(tokenized, stopped, tmp_path):  # noqa: F811
    out = stopped(5, tmp_path)
    staging = artifacts.staging_dir(out)
    assert (staging / "checkpoints" / "iter_0000005").is_dir()  # save_interval=10 would save none
    r = llmctl("pretrain", str(tokenized), "--out", str(out), *COMMON, "--resume", env={"LLMCTL_QUIET": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from iter_0000005" in r.stderr
    assert steps(out) == list(range(1, 9))


def test_killed_before_the_first_checkpoint_logs_each_step_once(tokenized, stopped, tmp_path):  # noqa: F811
    out = stopped(5, tmp_path)
    staging = artifacts.staging_dir(out)
    shutil.rmtree(staging / "checkpoints")  # as if killed before any checkpoint was written
    assert steps(staging) == [1, 2, 3, 4, 5]
    r = llmctl("pretrain", str(tokenized), "--out", str(out), *COMMON, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert steps(out) == list(range(1, 9))
    assert len((out / "loss_curve.csv").read_text().splitlines()) == 9


@pytest.mark.parametrize("damage", ["overwrite 64 KB", "truncate"])
def test_a_corrupt_checkpoint_is_refused_by_name(tokenized, stopped, tmp_path, damage):  # noqa: F811
    out = stopped(3, tmp_path)
    ckpt = artifacts.staging_dir(out) / "checkpoints" / "iter_0000003"
    assert (ckpt / "SHA256SUMS").is_file()
    victim = max(ckpt.glob("*.distcp"), key=lambda f: f.stat().st_size)
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[: 64 * 1024] = bytes(min(64 * 1024, len(data)))
    victim.write_bytes(bytes(data))
    for args in (["--resume"], ["--set", f"train.init_checkpoint={ckpt}", "--force"]):
        target = out if args == ["--resume"] else tmp_path / "other"
        r = llmctl("pretrain", str(tokenized), "--out", str(target), *COMMON, *args)
        assert r.returncode == 2, r.stderr[-3000:]
        assert str(victim) in r.stderr.replace("\n", "") and "corrupt or truncated" in r.stderr
        assert "Traceback" not in r.stderr
