"""`llmctl dpo` on SmolLM2-135M-Instruct with LoRA (a real model, ~3 min of CPU): a module of its own
so that the test scheduler (loadscope) can run it beside the tiny-model dpo tests."""

from __future__ import annotations

import json

import pytest

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.integration.test_rm import short_pairs


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_lora_learns_a_preference_from_chance(tmp_path):
    """SmolLM2-135M-Instruct (its own ChatML template), LoRA: held-out implicit-reward accuracy from 0.5
    (pi == pi_ref) to >= 0.9 on the learnable preference (an answer vs the same answer spelled
    backwards), base weights untouched. Measured on the 24 held-out short pairs: 0.5 -> 1.0, mean
    implicit-reward margin 0 -> 3.71 after 12 steps of 4. On the shipped real multiple-choice pairs
    (the correct option chosen, a human-written wrong one rejected) one manual run of 30 steps of 4
    on CPU moved accuracy only 0.5 -> 0.594 (38 of 64 held-out pairs, ~1.5 standard errors): too
    weak and too slow (16 min) for a test that must not flake; see the issue's note."""
    from tests.fixtures.models import smollm2

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in short_pairs()))
    out = tmp_path / "dpo"
    r = llmctl(
        "dpo", str(smollm2()), f"prefs={data}", "--out", str(out),
        "--config", str(REPO / "recipes" / "dpo" / "lora.yaml"), "--max-steps", "12",
        "--set", "data.max_length=72", "--set", "data.held_out=24", "--set", "train.batch_size=4",
        "--set", "train.grad_accum=1", "--set", "train.lr=0.0005", "--set", "train.device=cpu",
        "--set", "train.dtype=float32", "--set", "train.save_steps=1000", "--set", "train.eval_batch_size=8",
        timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["base_weights_changed"] == 0
    assert m["held_out_accuracy_before"] == 0.5
    assert m["held_out_accuracy_after"] >= 0.9, m
