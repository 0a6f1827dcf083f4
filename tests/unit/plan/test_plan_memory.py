"""Per-GPU memory: GPT-3 175B at Megatron-LM's layout against the closed forms, Korthikanti et
al.'s Table 2, the tiny recipe's parameter count, and the layout search."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmctl.errors import UserError
from llmctl.plan import memory as m
from llmctl.plan import runs

RECIPES = Path(__file__).resolve().parents[3] / "recipes/pretrain"
H, L, S, V = 12288, 96, 2048, 51200


def test_gpt3_has_174_6b_parameters():
    # Narayanan et al. 2021, Table 1: 174.6B; 12Lh² + 13Lh + (V + s)h + 2h (final LayerNorm)
    assert m.GPT3_175B.params() == 12 * L * H * H + 13 * L * H + (V + S) * H + 2 * H
    assert round(m.GPT3_175B.params() / 1e9, 1) == 174.6


@pytest.mark.parametrize(("dist", "per_param"), [(False, 18), (True, 6 + 12 / 16)])
def test_gpt3_tp8_pp8_model_states_equal_the_closed_form(dist, per_param):
    # Narayanan et al. 2021, Table 1: 175B at TP 8, PP 8 on 1024 GPUs (DP 16), batch 1536
    layout = m.Layout(8, 8, 16, 1, 1536, sequence_parallel=True, distributed_optimizer=dist)
    e = m.estimate(m.GPT3_175B, layout)
    # first stage: 12 layers (TP-split weights and QKV/fc1 biases; replicated row-parallel biases and
    # LayerNorms), the word-embedding shard and the replicated position embedding
    first = 12 * (12 * H * H // 8 + 7 * H // 8 + 6 * H) + V * H // 8 + S * H
    assert e.stage == 0 and e.params == first
    assert e.weights + e.grads + e.optimizer == per_param * first
    assert e.weights == 2 * first and e.grads == 4 * first


@pytest.mark.parametrize(
    ("tp", "sp", "recompute", "per_sbh"),
    [  # Korthikanti et al. 2022, Table 2 (a = 96, s = 2048, h = 12288: 5as/h = 80)
        (1, False, "none", 34 + 80),
        (8, False, "none", 10 + 24 / 8 + 80 / 8),
        (8, True, "none", 34 / 8 + 80 / 8),
        (8, False, "selective", 10 + 24 / 8),
        (8, True, "selective", 34 / 8),
        (8, False, "full", 2),
    ],
)
def test_activation_memory_is_the_papers_formula(tp, sp, recompute, per_sbh):
    layout = m.Layout(tp, 1, 1, 1, 1, sequence_parallel=sp, recompute=recompute)
    assert m.activation_bytes(m.GPT3_175B, layout) == pytest.approx(S * 1 * H * per_sbh, rel=1e-12)


def test_selective_recompute_with_sequence_parallel_saves_5x_on_gpt3():
    # the paper's headline: 5x less activation memory than tensor parallelism alone
    base = m.activation_bytes(m.GPT3_175B, m.Layout(8, 1, 1, 1, 1))
    both = m.activation_bytes(
        m.GPT3_175B, m.Layout(8, 1, 1, 1, 1, sequence_parallel=True, recompute="selective")
    )
    assert 5 < base / both < 5.5


def test_first_pipeline_stage_holds_p_micro_batches():
    layout = m.Layout(8, 8, 16, 1, 1536, sequence_parallel=True, recompute="selective")
    e = m.estimate(m.GPT3_175B, layout)
    assert e.in_flight == 8
    assert e.activations == 12 * 8 * m.activation_bytes(m.GPT3_175B, layout)  # L/p layers x p
    assert layout.bubble == pytest.approx(7 / 96)  # (p - 1)/m, m = 1536 / 16


def test_recipes_parameter_counts():
    tiny = runs.model_of(runs.load_recipe(RECIPES / "tiny.yaml"), 4096)
    assert tiny.params() == 362816  # what the demo's pretrain manifest records
    llama7b = runs.model_of(runs.load_recipe(RECIPES / "llama-7b-tp2-pp2.yaml"), 32000)
    assert llama7b.params() == 6_738_415_616  # LLaMA-7B's published count (untied, vocab 32000)


def test_search_lists_fitting_layouts_best_first():
    model = runs.model_of(runs.load_recipe(RECIPES / "llama-7b-tp2-pp2.yaml"), 32000)
    base = m.Layout(1, 1, 1, 1, 1024)
    found = m.search(model, 64, base, 80e9)
    assert found and all(e.total <= 80e9 for e, _ in found)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    assert all(e.layout.tp <= 8 and e.layout.tp * e.layout.pp * e.layout.dp == 64 for e, _ in found)
    assert not m.search(model, 64, base, 1e9)  # nothing fits in 1 GB


def test_bad_layouts_and_sizes_name_the_flag():
    with pytest.raises(UserError, match="--pp"):
        m.estimate(m.GPT3_175B, m.Layout(1, 7, 1))
    with pytest.raises(UserError, match="--recompute"):
        m.estimate(m.GPT3_175B, m.Layout(recompute="some"))
    assert m.parse_bytes("80GB") == 80e9 and m.parse_bytes("141GiB") == 141 * 2**30
    with pytest.raises(UserError, match="--gpu-memory"):
        m.parse_bytes("lots")
