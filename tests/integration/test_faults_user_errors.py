"""Issue 13, user errors: every mistake a user can make is exit 2 with one line naming the key,
file or line at fault, caught before any work (no rank starts, no staging is left)."""

from __future__ import annotations

import json
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
