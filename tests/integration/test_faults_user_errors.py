"""Issue 13, user errors: every mistake a user can make is exit 2 with one line naming the key,
file or line at fault, caught before any work (no rank starts, no staging is left)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import llmctl


def _fake_tokenized(tmp_path: Path) -> Path:
    """Enough of a tokenize artifact to pass pretrain's input check: config errors must come first."""
    tok = tmp_path / "tok"
    (tok / "tokenizer").mkdir(parents=True)
    (tok / "blend.json").write_text(json.dumps({"vocab_size": 64}))
    return tok


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.hidden_size=7", "model.hidden_size"),
        ("model.hidden_size=0", "model.hidden_size"),
        ("model.hidden_size=36", "model.hidden_size"),  # 4 heads of 9: RoPE needs an even head size
        ("model.num_attention_heads=0", "model.num_attention_heads"),
        ("model.num_layers=-3", "model.num_layers"),
        ("model.num_layers=0", "model.num_layers"),
        ("model.num_query_groups=3", "model.num_query_groups"),
        ("model.seq_length=100000000", "model.seq_length"),
        ("model.seq_length=0", "model.seq_length"),
        ("optim.lr=-1", "optim.lr"),
        ("train.save_interval=0", "train.save_interval"),
        ("train.eval_interval=0", "train.eval_interval"),
        ("train.eval_steps=0", "train.eval_steps"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("parallel.tensor=0", "parallel.tensor"),
        ("nproc=0", "nproc"),
    ],
)
def test_pretrain_set_values_are_validated_before_any_rank_starts(tmp_path, override, key):
    tok = _fake_tokenized(tmp_path)
    out = tmp_path / "pt"
    t0 = time.perf_counter()
    r = llmctl("pretrain", str(tok), "--out", str(out), "-c", "recipes/pretrain/tiny.yaml", "--set", override)
    took = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr
    assert f"'{key}'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert took < 5, f"{override}: {took:.1f}s"
    assert not out.exists() and not list(tmp_path.glob(".pt*")), "nothing may be staged"


# ---------------------------------------------------------------- file names and odd files


def _docs(path: Path, n: int = 30) -> Path:
    """n distinct plain-prose documents without ids (so ids are named after the file)."""
    from tests.fixtures import corpus

    path.write_text("".join(json.dumps({"text": p}) + "\n" for p in corpus.prose(n)))
    return path


@pytest.mark.parametrize("stage", ["clean", "dedup", "tokenize"])
def test_non_utf8_file_names_work(tmp_path, stage):
    """A directory and a file whose names are not UTF-8 (Latin-1 bytes, as old archives have)."""
    from llmctl import artifacts
    from llmctl.formats import documents

    inp = tmp_path / os.fsdecode(b"in\xff")
    inp.mkdir()
    _docs(inp / os.fsdecode(b"caf\xe9.jsonl"))
    out = tmp_path / "out"
    extra = ["--set", "tokenizer.vocab_size=300"] if stage == "tokenize" else []
    r = llmctl(stage, str(inp), "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = artifacts.Manifest.read(out)
    assert Path(manifest.inputs[0]["path"]) == inp.resolve()  # the exact bytes, read back
    if stage != "tokenize":
        ids = [rec["id"] for rec in documents.read_shards(out / "data")]
        assert ids and all(i.startswith("in\\xff/caf\\xe9.jsonl:") for i in ids), ids[:3]


@pytest.mark.parametrize("content", ["", "\n\n\n"], ids=["empty", "newlines"])
def test_dedup_takes_an_empty_file_like_clean(tmp_path, content):
    from llmctl import artifacts

    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a-empty.jsonl").write_text(content)
    alone = tmp_path / "alone"
    r = llmctl("dedup", str(inp / "a-empty.jsonl"), "--out", str(alone))
    assert r.returncode == 0, r.stderr[-3000:]
    assert artifacts.Manifest.read(alone).metrics["input_docs"] == 0
    _docs(inp / "b.jsonl", 10)
    for stage in ("clean", "dedup"):
        r = llmctl(stage, str(inp), "--out", str(tmp_path / stage))
        assert r.returncode == 0, r.stderr[-3000:]
        assert artifacts.Manifest.read(tmp_path / stage).metrics["input_docs"] == 10


BAD_SMALL_JSONL = {
    "binary": (b'{"text": "fine"}\n' + b"\x00\xff\xfe\x89PNG\r\n", 2, "not UTF-8"),
    "deep": (b'{"text": "fine"}\n{"text": "x"}\n' + b"[" * 200_000 + b"]" * 200_000 + b"\n", 3, "nested"),
}


@pytest.mark.parametrize("kind", sorted(BAD_SMALL_JSONL))
def test_a_binary_or_deeply_nested_against_file_names_file_and_line(tmp_path, kind):
    data, line, why = BAD_SMALL_JSONL[kind]
    bad = tmp_path / "evalset.jsonl"
    bad.write_bytes(data)
    r = llmctl(
        "dedup", str(_docs(tmp_path / "docs.jsonl", 5)), "--out", str(tmp_path / "dd"), "--against", str(bad)
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"{bad}:{line}" in r.stderr and why in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "dd").exists()


@pytest.mark.parametrize("kind", sorted(BAD_SMALL_JSONL))
def test_a_binary_or_deeply_nested_eval_task_file_names_file_and_line(tmp_path, kind):
    data, line, why = BAD_SMALL_JSONL[kind]
    bad = tmp_path / "items.jsonl"
    bad.write_bytes(data)
    task = tmp_path / "mine.yaml"
    task.write_text("name: mine\ntype: generation\ndata: items.jsonl\nprompt: '{text}'\n")
    r = llmctl("eval", str(tmp_path / "no-model"), "--out", str(tmp_path / "ev"), "--tasks", str(task))
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"{bad}:{line}" in r.stderr and why in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ev").exists()


# ---------------------------------------------------------------- nothing left behind


def test_tokenize_leaves_no_staging_after_a_user_error(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"text": ""}\n' * 5)  # not an empty file, but no text to train a tokenizer on
    out = tmp_path / "tok"
    r = llmctl("tokenize", str(src), "--out", str(out), "--set", "tokenizer.vocab_size=300")
    assert r.returncode == 2 and "no text" in r.stderr, r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl"], "staging left behind"


def test_eval_leaves_no_staging_after_a_user_error(tmp_path):
    """Config and tokenizer load (checked before staging), the weights do not (found after)."""
    from tests.fixtures.models import tiny_llama

    model = tiny_llama(tmp_path / "model")
    (model / "model.safetensors").unlink()
    out = tmp_path / "ev"
    r = llmctl("eval", str(model), "--out", str(out), "--tasks", "capitals", "--limit", "2")
    assert r.returncode == 2 and str(model) in r.stderr, r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "staging left behind"


def test_saved_model_files_honour_the_umask(tmp_path):
    """save_pretrained writes model.safetensors 0600; llmctl's hf/ gives it what the umask says."""
    from llmctl import hf
    from tests.fixtures.models import tiny_llama

    old = os.umask(0o022)
    try:
        model = tiny_llama(tmp_path / "model")
        hf.honour_umask(model)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in model.iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}, modes
