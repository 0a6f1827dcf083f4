"""Issue 13, security: no file handed to llmctl runs code. A checkpoint's pickles (`.metadata`,
`common.pt`) carry a payload that would create a file; every stage that loads a checkpoint
(export, pretrain --set train.init_checkpoint, pretrain --resume) exits 2 naming the file, and
the payload never runs. A legitimate checkpoint still exports. A model directory whose config
needs custom code is exit 2 for eval and clean's perplexity filter, even when the user would
answer "y" to transformers' "run the custom code?" prompt."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

PT = [
    "-c",
    "recipes/pretrain/tiny.yaml",
    *("--set", "train.steps=4", "--set", "train.save_interval=2", "--set", "train.eval_interval=2"),
    *("--set", "model.seq_length=64", "--set", "optim.warmup_steps=1"),
]


class Payload:
    """Unpickling this runs `touch MARKER` (what an attacker's checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """(tokenized, out): a real pretrain stopped after 2 of 4 steps, its staging directory holding
    spec.json and checkpoints/iter_0000002 (what --resume, export and init_checkpoint read)."""
    root = tmp_path_factory.mktemp("sec")
    src = root / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(30)))
    )
    r = llmctl("tokenize", str(src), "--out", str(root / "tok"), "--set", "tokenizer.vocab_size=320")
    assert r.returncode == 0, r.stderr
    out = root / "pt"
    r = llmctl("pretrain", str(root / "tok"), "--out", str(out), *PT, "--set", "train.exit_after_steps=2")
    assert r.returncode == 3, r.stderr[-3000:]
    assert (artifacts.staging_dir(out) / "checkpoints" / "iter_0000002" / ".metadata").is_file()
    return root / "tok", out


def _copy(interrupted, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private copy of the interrupted run: (tokenized, out, its checkpoint directory)."""
    tok, out = interrupted
    mine = tmp_path / "pt"
    shutil.copytree(artifacts.staging_dir(out), artifacts.staging_dir(mine), symlinks=True)
    return tok, mine, artifacts.staging_dir(mine) / "checkpoints" / "iter_0000002"


def _poison(path: Path, marker: Path) -> None:
    if path.name == "common.pt":
        torch.save({"progress": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


@pytest.mark.slow
@pytest.mark.parametrize("poisoned", [".metadata", "common.pt"])
def test_export_refuses_a_checkpoint_whose_pickle_runs_code(interrupted, tmp_path, poisoned):
    _, _, ckpt = _copy(interrupted, tmp_path)
    marker = tmp_path / "PWNED"
    _poison(ckpt / poisoned, marker)
    r = llmctl("export", str(ckpt), "--out", str(tmp_path / "hf"))
    assert r.returncode == 2, r.stderr[-3000:]
    assert str(ckpt / poisoned) in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists(), "the checkpoint's payload ran"
    assert not (tmp_path / "hf").exists()


@pytest.mark.slow
def test_init_checkpoint_and_resume_refuse_a_hostile_checkpoint(interrupted, tmp_path):
    tok, out, ckpt = _copy(interrupted, tmp_path)
    marker = tmp_path / "PWNED"
    _poison(ckpt / ".metadata", marker)
    fresh = tmp_path / "fresh"
    r = llmctl("pretrain", str(tok), "--out", str(fresh), *PT, "--set", f"train.init_checkpoint={ckpt}")
    assert r.returncode == 2 and str(ckpt / ".metadata") in r.stderr, r.stderr[-3000:]
    r = llmctl("pretrain", str(tok), "--out", str(out), *PT, "--resume")
    assert r.returncode == 2 and str(ckpt / ".metadata") in r.stderr, r.stderr[-3000:]
    assert not marker.exists(), "the checkpoint's payload ran"


@pytest.mark.slow
def test_the_ranks_own_loader_refuses_foreign_code_too(interrupted, tmp_path, monkeypatch):
    """Defence in depth: what a rank loads after the CLI's check (a file swapped in between)."""
    from torch.distributed.checkpoint import FileSystemReader

    from llmctl.megatron import checkpoint
    from llmctl.megatron.checkpoint import UnsafeCheckpoint

    # undone after the test: this pytest process goes on to run other tests
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0")
    monkeypatch.setattr(FileSystemReader, "read_metadata", FileSystemReader.read_metadata)
    checkpoint.install()  # what importing llmctl.megatron does in a rank

    _, _, ckpt = _copy(interrupted, tmp_path)
    assert FileSystemReader(str(ckpt)).read_metadata().state_dict_metadata  # the real one loads
    marker = tmp_path / "PWNED"
    _poison(ckpt / ".metadata", marker)
    with pytest.raises(UnsafeCheckpoint, match="posix.system"):
        FileSystemReader(str(ckpt)).read_metadata()
    buf = io.BytesIO()
    torch.save([Payload(marker)], buf)  # a ShardedObject's bytes inside a .distcp file
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf, weights_only=False)  # what torch's load planner asks for
    assert not marker.exists()


@pytest.mark.slow
def test_a_legitimate_checkpoint_still_exports_and_resumes(interrupted, tmp_path):
    tok, out, ckpt = _copy(interrupted, tmp_path)
    r = llmctl("export", str(ckpt), "--out", str(tmp_path / "hf"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert artifacts.Manifest.read(tmp_path / "hf").metrics["max_abs_logit_diff"] <= 1e-4
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "hf").iterdir() if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # model.safetensors too (it was 0600)
    r = llmctl("pretrain", str(tok), "--out", str(out), *PT, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert artifacts.Manifest.read(out).metrics["steps"] == 4


# ---------------------------------------------------------------- trust_remote_code


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tests.fixtures.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _custom_code_model(tiny: Path, d: Path, marker: Path, model_type: str = "evilgpt") -> Path:
    """A copy of a working tiny model whose config maps the Auto classes onto evil.py, which
    creates `marker` as soon as it is imported (what a hostile model's modeling file would do)."""
    shutil.copytree(tiny, d)
    config = json.loads((d / "config.json").read_text())
    config.update(
        model_type=model_type,
        auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"},
    )
    (d / "config.json").write_text(json.dumps(config))
    (d / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evilgpt'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n"
    )
    return d


def _answering_yes(*args: str) -> subprocess.CompletedProcess:
    """The CLI with "y" waiting on stdin: transformers' prompt, if it came, would be answered yes."""
    env = {**os.environ, "LLMCTL_QUIET": "1"}
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli", *args],
        cwd=REPO,
        env=env,
        input="y\ny\ny\ny\ny\n",
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_refused(r: subprocess.CompletedProcess, model: Path, marker: Path) -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    assert str(model / "config.json") in r.stderr and "custom code" in r.stderr, r.stderr
    assert "[y/N]" not in r.stdout + r.stderr, "transformers prompted"
    assert "Traceback" not in r.stderr
    assert not marker.exists(), "the model's custom code ran"


def test_eval_refuses_a_model_that_needs_custom_code(tiny, tmp_path):
    marker = tmp_path / "PWNED"
    model = _custom_code_model(tiny, tmp_path / "model", marker)
    out = tmp_path / "ev"
    r = _answering_yes("eval", str(model), "--out", str(out), "--tasks", "capitals", "--limit", "2")
    _assert_refused(r, model, marker)
    assert not out.exists()


def test_clean_perplexity_refuses_a_model_that_needs_custom_code(tiny, tmp_path):
    marker = tmp_path / "PWNED"
    model = _custom_code_model(tiny, tmp_path / "model", marker)
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(5)))
    )
    out = tmp_path / "clean"
    r = _answering_yes(
        "clean", str(docs), "--out", str(out),
        "--set", "perplexity.enabled=true", "--set", f"perplexity.model={model}",
    )  # fmt: skip
    _assert_refused(r, model, marker)
    assert not out.exists()


def test_a_known_model_type_loads_natively_and_ignores_its_auto_map(tiny, tmp_path):
    """auto_map beside model_type llama: transformers' own LlamaForCausalLM, evil.py never imported."""
    marker = tmp_path / "PWNED"
    model = _custom_code_model(tiny, tmp_path / "model", marker, model_type="llama")
    r = _answering_yes(
        "eval", str(model), "--out", str(tmp_path / "ev"), "--tasks", "capitals", "--limit", "2"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert not marker.exists()
