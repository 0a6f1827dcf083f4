"""Fit the Chinchilla loss L(N, D) = E + A/N^α + B/D^β to one's own runs, the way the paper does.

    python -c "from llmctl.plan import fit; help(fit.fit)"

Hoffmann et al. 2022, §3.3 and eq. 3 / Appendix D.2: minimise over (a, b, e, α, β)
    Σ_i Huber_δ( LSE(a - α log N_i, b - β log D_i, e) - log L_i ),  δ = 1e-3,
with L-BFGS from a grid of initialisations (α, β ∈ {0, 0.5, ..., 2}, e ∈ {-1, -0.5, ..., 1},
a, b ∈ {0, 5, ..., 25}), keeping the best; then A = exp(a), B = exp(b), E = exp(e).
The `coarse` grid (72 starts instead of 4,500) is the default, `--grid paper` runs the paper's:
each start costs about 15 ms, and on the synthetic tests both find the same minimum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from llmctl.errors import UserError
from llmctl.plan.laws import Parametric

DELTA = 1e-3  # Huber δ (Hoffmann et al. 2022, §3.3)
GRIDS = {
    # Hoffmann et al. 2022, Appendix D.2: the initialisation grid
    "paper": (
        np.arange(0, 2.01, 0.5),
        np.arange(0, 2.01, 0.5),
        np.arange(-1, 1.01, 0.5),
        np.arange(0, 25.1, 5),
        np.arange(0, 25.1, 5),
    ),
    "coarse": (
        np.array([0.0, 0.5, 1.0]),
        np.array([0.0, 0.5, 1.0]),
        np.array([-1.0, 1.0]),
        np.array([0.0, 10.0]),
        np.array([0.0, 10.0]),
    ),
}


# (a, b, e, α, β) stay within the span of the paper's grid, widened: A, B up to e^30, E in
# [e^-2, e^2], exponents in [0, 2]. The paper's fit is unbounded; with few runs (two token counts,
# say) an unbounded fit can send β to 12 and B to 1e98 with equally small residuals.
BOUNDS = [(0.0, 30.0), (0.0, 30.0), (-2.0, 2.0), (0.0, 2.0), (0.0, 2.0)]


def _objective(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Σ Huber(LSE(...) - log L) and its gradient in (a, b, e, α, β)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    pred = top + np.log(total)
    w /= total  # softmax weights: d pred / d term
    r = pred - log_l
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.where(small, r, delta * np.sign(r))
    grad = np.array(
        [
            (dr * w[0]).sum(),
            (dr * w[1]).sum(),
            (dr * w[2]).sum(),
            -(dr * w[0] * log_n).sum(),
            -(dr * w[1] * log_d).sum(),
        ]
    )
    return float(value), grad


@dataclass(frozen=True)
class Fit:
    law: Parametric
    objective: float
    residuals: list[float]  # log L_i - log L̂_i
    starts: int
    warnings: list[str]

    def to_dict(self) -> dict:
        p = self.law
        return {
            "E": p.E,
            "A": p.A,
            "B": p.B,
            "alpha": p.alpha,
            "beta": p.beta,
            "huber_objective": self.objective,
            "residuals_log_loss": self.residuals,
            "starts": self.starts,
            "warnings": self.warnings,
        }


def fit(
    params: list[float], tokens: list[float], losses: list[float], grid: str = "coarse", delta: float = DELTA
) -> Fit:
    """The best L-BFGS fit of the Chinchilla form to (N_i, D_i, L_i) over the grid's starts."""
    from scipy.optimize import minimize

    if grid not in GRIDS:
        raise UserError(f"--grid {grid!r}: one of {', '.join(GRIDS)}")
    n, d, loss = (np.asarray(x, dtype=float) for x in (params, tokens, losses))
    if len(n) < 5:
        raise UserError(f"fitting 5 constants needs at least 5 runs with a validation loss, got {len(n)}")
    if (n <= 0).any() or (d <= 0).any() or (loss <= 0).any():
        raise UserError("every run needs positive parameters, tokens and validation loss")
    args = (np.log(n), np.log(d), np.log(loss), delta)
    best = None
    starts = list(itertools.product(*GRIDS[grid]))
    for alpha, beta, e, a, b in starts:
        r = minimize(
            _objective,
            np.array([a, b, e, alpha, beta]),
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=BOUNDS,
            options={"maxiter": 1000},
        )
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    a, b, e, alpha, beta = best.x
    law = Parametric(
        E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
    )
    resid = [float(np.log(x) - np.log(law.loss(nn, dd))) for nn, dd, x in zip(n, d, loss, strict=True)]
    warnings = []
    if len(set(n)) < 3 or len(set(d)) < 3:
        warnings.append(
            f"{len(set(n))} model sizes and {len(set(d))} token counts: the fit is poorly "
            "determined (3 or more of each are needed to separate A/N^α from B/D^β)"
        )
    for name, value, (lo, hi) in zip(("a", "b", "e", "α", "β"), best.x, BOUNDS, strict=True):
        if min(value - lo, hi - value) < 1e-6:
            warnings.append(
                f"{name} = {value:.3g} sits at its bound [{lo}, {hi}]: extrapolations are unreliable"
            )
    return Fit(law, float(best.fun), resid, len(starts), warnings)
