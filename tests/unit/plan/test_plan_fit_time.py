"""The Chinchilla fit recovers known constants from noisy synthetic losses; time arithmetic;
a written recipe loads through the pretrain config loader."""

from __future__ import annotations

import numpy as np
import pytest

from llmctl import config as cfgmod
from llmctl.errors import UserError
from llmctl.plan import fit, laws, runs, timing
from llmctl.pretrain.config import PretrainConfig


def synthetic(law: laws.Parametric, seed: int, noise: float = 0.003):
    rng = np.random.default_rng(seed)
    n, d = np.meshgrid(np.geomspace(3e7, 3e9, 6), np.geomspace(1e9, 3e11, 5))
    loss = [law.loss(a, b) * np.exp(rng.normal(0, noise)) for a, b in zip(n.ravel(), d.ravel(), strict=True)]
    return list(n.ravel()), list(d.ravel()), loss


def test_fit_recovers_the_constants_and_the_optimum():
    true = laws.CHINCHILLA_FIT
    result = fit.fit(*synthetic(true, 0))
    got = result.law
    assert got.alpha == pytest.approx(true.alpha, abs=0.02)
    assert got.beta == pytest.approx(true.beta, abs=0.02)
    assert got.E == pytest.approx(true.E, abs=0.03)
    n_true, _ = true.optimum(laws.GOPHER_FLOPS)
    assert got.optimum(laws.GOPHER_FLOPS)[0] == pytest.approx(n_true, rel=0.15)
    assert max(abs(r) for r in result.residuals) < 0.015  # the noise is 0.3% per point


def test_a_fit_from_two_token_counts_warns():
    n, d, loss = synthetic(laws.BESIROGLU, 2)
    keep = [i for i, x in enumerate(d) if x in sorted(set(d))[:2]]
    result = fit.fit([n[i] for i in keep], [d[i] for i in keep], [loss[i] for i in keep])
    assert any("2 token counts" in w for w in result.warnings)
    assert 0 <= result.law.beta <= 2  # bounded, not beta = 12 and B = 1e98


def test_fit_needs_five_runs():
    with pytest.raises(UserError, match="at least 5 runs"):
        fit.fit([1e6] * 4, [1e8] * 4, [3.0] * 4)


def test_time_at_an_mfu_and_from_a_measured_run():
    t = timing.estimate(1.4e12, 6 * 70e9, 1024, "h100", 0.4)
    assert t.seconds == pytest.approx(1.4e12 * 6 * 70e9 / (1024 * 989.5e12 * 0.4))
    assert t.gpu_hours == pytest.approx(t.seconds * 1024 / 3600)
    assert timing.peak_flops("a100") == 312e12 and timing.peak_flops("h200") == 989.5e12
    # a run of 1000 tokens/s on 2 devices at 6e6 FLOPs/token achieves 3e9 FLOP/s per device
    m = timing.measured(1e9, 6e6, 4, 1000, 6e6, 2, "run")
    assert m.seconds == pytest.approx(1e9 * 6e6 / (4 * 3e9))
    with pytest.raises(UserError, match="--gpu"):
        timing.peak_flops("tpu")


def test_budget_recipe_loads_through_the_pretrain_config(tmp_path):
    a = laws.optimum("besiroglu", flops=1e21)
    tree = runs.budget_recipe(a.params, a.tokens, 32000, 2048, 512)
    out = tmp_path / "r.yaml"
    runs.write_recipe(out, tree, "llmctl plan budget --flops 1e21", "test")
    cfg = cfgmod.load(PretrainConfig, out)
    assert out.read_text().startswith("# llmctl pretrain ")
    n = runs.model_of(cfg, 32000).params()
    assert n == pytest.approx(a.params, rel=0.1)
    assert runs.recipe_tokens(cfg) == pytest.approx(a.tokens, rel=0.01)
