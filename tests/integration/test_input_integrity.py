"""An input artifact is checked against its manifest before a stage uses it (issue 13): a
truncated or changed file is exit 2 naming it, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl import artifacts
from llmctl.errors import UserError
from tests.conftest import llmctl
from tests.fixtures import corpus
from tests.unit.test_artifacts import upper_stage


@pytest.fixture
def art(tmp_path: Path) -> Path:
    raw = tmp_path / "raw.txt"
    raw.write_text("hello artifact world\n" * 10)
    out = tmp_path / "a"
    upper_stage(raw, out)
    return out


def test_a_truncated_file_is_named(art):
    f = art / "data.txt"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(UserError, match=r"data.txt is 50 bytes, its manifest records 210"):
        artifacts.check_artifact(art)


def test_a_missing_file_is_named(art):
    (art / "data.txt").unlink()
    with pytest.raises(UserError, match=r"data.txt is missing"):
        artifacts.check_artifact(art)


def test_a_same_size_change_is_caught_by_sha256_unless_turned_off(art, monkeypatch):
    f = art / "data.txt"
    f.write_text(f.read_text().lower())
    with pytest.raises(UserError, match="does not match the sha256"):
        artifacts.check_artifact(art)  # default: files under HASH_BELOW are hashed
    artifacts.check_artifact(art, verify=False)  # --no-verify-inputs: sizes only
    monkeypatch.setattr(artifacts, "HASH_BELOW", 10)  # a "large" file: sizes only by default
    artifacts.check_artifact(art)
    with pytest.raises(UserError, match="does not match the sha256"):
        artifacts.check_artifact(art, verify=True)  # --verify-inputs: every file


def test_a_stage_checks_its_input_artifact_in_begin(art, tmp_path):
    (art / "data.txt").write_text("short\n")
    with pytest.raises(UserError, match="data.txt is 6 bytes"):
        upper_stage(art, tmp_path / "b")
    assert not artifacts.staging_dir(tmp_path / "b").exists()


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tok")
    src = root / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(30)))
    )
    r = llmctl("tokenize", str(src), "--out", str(root / "tok"), "--set", "tokenizer.vocab_size=400")
    assert r.returncode == 0, r.stderr
    return root / "tok"


def test_pretrain_on_a_truncated_bin_is_exit_2_naming_it(tokenized, tmp_path):
    import shutil

    tok = tmp_path / "tok"
    shutil.copytree(tokenized, tok)
    (binfile,) = (tok / "data").glob("*.bin")
    binfile.write_bytes(binfile.read_bytes()[:-100])
    r = llmctl(
        "pretrain",
        str(tok),
        "--out",
        str(tmp_path / "pt"),
        "--set",
        "train.steps=4",
        "--set",
        "optim.warmup_steps=1",
        timeout=120,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert str(binfile) in r.stderr.replace("\n", "") and "truncated" in r.stderr
    assert "Traceback" not in r.stderr


def test_tokenize_on_a_changed_clean_shard_is_exit_2_unless_no_verify(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(20)))
    )
    clean = tmp_path / "clean"
    assert llmctl("clean", str(src), "--out", str(clean)).returncode == 0
    shard = next((clean / "data").glob("part-*.jsonl.zst"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: the size holds, the hash does not
    shard.write_bytes(bytes(raw))
    args = ["tokenize", str(clean), "--out", str(tmp_path / "tok"), "--set", "tokenizer.vocab_size=400"]
    r = llmctl(*args)
    assert r.returncode == 2 and "does not match the sha256" in r.stderr and shard.name in r.stderr
    r = llmctl(*args, "--no-verify-inputs")
    assert "does not match the sha256" not in r.stderr
