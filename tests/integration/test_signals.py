"""SIGTERM and Ctrl-C on `llmctl pretrain` (issue 13): the rank stops too (checkpointing at the
step boundary), one line says what is kept, no rank traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llmctl import artifacts
from tests.conftest import REPO
from tests.integration.test_pretrain import tokenized  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.slow


def _ctrl_c_answered() -> None:
    """In the child: SIGINT to its default, as in a terminal. A test run started in the background
    (`cmd &` in a script) inherits SIGINT ignored, and Python keeps an inherited ignore."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _rank_alive(staging) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any("llmctl.pretrain.train" in line and str(staging) in line for line in out.splitlines())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_rank_with_a_checkpoint(tokenized, tmp_path, sig):  # noqa: F811
    out = tmp_path / "pt"
    cmd = [sys.executable, "-m", "llmctl.cli", "pretrain", str(tokenized), "--out", str(out)]
    cmd += ["--set", "train.steps=2000", "--set", "train.save_interval=1000", "--set", "model.seq_length=64"]
    cmd += ["--set", "train.log_interval=1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ})
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until training runs
        line = proc.stderr.readline()
        lines.append(line)
        if line.startswith("step 3/"):
            break
    proc.send_signal(sig)
    rest = proc.stderr.read()
    rc = proc.wait(timeout=120)
    staging = artifacts.staging_dir(out)
    assert not _rank_alive(staging)
    ckpts = sorted(p.name for p in (staging / "checkpoints").glob("iter_*"))
    assert ckpts and ckpts[-1] != "iter_0000000"  # saved at the step it stopped
    assert "Traceback" not in rest
    if sig == signal.SIGTERM:
        assert rc == 3 and "--resume" in rest, rest
    else:
        assert rc == 130 and f"interrupted; staging kept at {staging}; `--resume` continues" in rest, rest


def test_ctrl_c_on_clean_prints_one_line_and_no_worker_traceback(tmp_path):
    """Ctrl-C reaches the whole process group: the pool workers ignore it, the parent says one line."""
    from tests.fixtures import corpus

    src = tmp_path / "in.jsonl"
    passages = corpus.prose(20)
    with open(src, "w") as f:
        for i in range(6000):
            f.write(json.dumps({"id": str(i), "text": passages[i % 20]}) + "\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "llmctl.cli", "clean", str(src), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_ctrl_c_answered)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".out.staging/shards/*/data")):
        time.sleep(0.1)  # workers are busy once the shard's output exists
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted; staging kept at" in err and "`--resume` continues" in err
    assert not (out / "manifest.json").exists()
