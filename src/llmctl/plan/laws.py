"""Compute-optimal model size and tokens for a FLOP budget, under four published scaling laws.

    python -c "from llmctl.plan import laws; print(laws.optimum('chinchilla-fit', flops=5.76e23))"

Training compute is C = 6ND (N parameters, D tokens; Kaplan et al. 2020 §2.1, Hoffmann et al.
2022 §3). Each law answers: given C, the N and D that minimise the loss; given N (or D) and C,
the other; and the loss it predicts there.

- `chinchilla`: Hoffmann et al.'s approaches 1-2, N_opt = G·C^a with a ≈ 0.5 (about 20 tokens per
  parameter); constants from their Table 3.
- `chinchilla-fit`: their approach 3, L(N, D) = E + A/N^α + B/D^β with the constants printed in
  the paper's body (eq. 10), which are rounded.
- `besiroglu`: the same form refitted by Besiroglu et al. 2024 ("Chinchilla Scaling: A
  replication attempt"), whose optimum is close to approaches 1-2 again.
- `kaplan`: Kaplan et al. 2020's power laws, N_opt ∝ C^0.73 (they pick larger models for the
  same compute than Chinchilla, the survey's point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmctl.errors import UserError

PF_DAY = 1e15 * 86400  # FLOPs in one petaflop/s-day (Kaplan et al. 2020, §1.3 notation)
GOPHER_FLOPS = 5.76e23  # Gopher's training budget (Hoffmann et al. 2022, Table 3, "1 Gopher unit")


@dataclass(frozen=True)
class Parametric:
    """L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimum(self, flops: float) -> tuple[float, float]:
        """Closed-form minimiser of L(N, C/6N) (Hoffmann et al. 2022, eq. 4):
        N_opt = G·(C/6)^a, D_opt = G^-1·(C/6)^b, G = (αA/βB)^(1/(α+β)), a = β/(α+β), b = α/(α+β)."""
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        return g * (flops / 6) ** (self.beta / s), (flops / 6) ** (self.alpha / s) / g


# Hoffmann et al. 2022, approach 3: eq. 10 in §3.3 prints E = 1.69, A = 406.4, B = 410.7,
# α = 0.34, β = 0.28 (the rounding that Besiroglu et al. show biases the optimum, their §3).
CHINCHILLA_FIT = Parametric(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
# The same fit with more digits, which Besiroglu et al. (§2) read from the paper's TeX source
# (α = 0.3392, β = 0.2849, E = 1.6934; quoted from memory): at the Gopher budget it gives the
# 40B parameters that Hoffmann et al. report for approach 3. The rounded constants give 32B.
CHINCHILLA_FIT_TEX = Parametric(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)

# Besiroglu et al. 2024, Table 1 ("our estimate"): E = 1.8172, A = 482.01, B = 2085.43,
# α = 0.3478, β = 0.3658. Quoted from memory: the paper text could not be reached offline to check.
BESIROGLU = Parametric(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)

# Hoffmann et al. 2022, Table 2: approach 1 gives a = 0.50 (N_opt ∝ C^a), approach 2 a = 0.49.
# Table 3 lists approach 1's optimum for 400M ... 10T parameters but not G; the exponent and
# constant below are the minimax fit to its rows (a prints as 0.50 in Table 2), which returns
# every row's FLOPs and tokens within half a unit of the printed last digit. The Gopher row
# (67B, 1.5T) is left out: it is the budget 5.76e23 itself with N and D rounded, and
# 6 x 67e9 x 1.5e12 = 6.03e23 is not that budget.
CHINCHILLA_A = 0.4981088
CHINCHILLA_G = math.exp(-2.3101668)

# Kaplan et al. 2020: eq. 1.7 / Figure 14, N_opt = 1.3e9 · C_min^0.73 with C_min in PF-days (N
# without embeddings); eq. 1.5, L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D with α_N = 0.076,
# α_D = 0.095, N_c = 8.8e13, D_c = 5.4e13 (Table 1, nats per token on WebText2 with GPT-2's BPE:
# not comparable with the Chinchilla losses on MassiveText).
KAPLAN_G, KAPLAN_A = 1.3e9, 0.73
KAPLAN_AN, KAPLAN_AD, KAPLAN_NC, KAPLAN_DC = 0.076, 0.095, 8.8e13, 5.4e13

LAWS = ("chinchilla", "chinchilla-fit", "besiroglu", "kaplan")
PARAMETRIC = {"chinchilla-fit": CHINCHILLA_FIT, "besiroglu": BESIROGLU}


@dataclass(frozen=True)
class Answer:
    """One law's answer for a budget: parameters, tokens, FLOPs and the predicted loss."""

    law: str
    params: float
    tokens: float
    flops: float
    loss: float | None
    loss_note: str

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params

    def to_dict(self) -> dict[str, float | str | None]:
        return {
            "law": self.law,
            "params": self.params,
            "tokens": self.tokens,
            "flops": self.flops,
            "tokens_per_param": round(self.tokens_per_param, 3),
            "loss": None if self.loss is None else round(self.loss, 4),
            "loss_note": self.loss_note,
        }


def check_law(name: str) -> str:
    if name not in LAWS:
        raise UserError(f"--law {name!r}: unknown scaling law; one of {', '.join(LAWS)}")
    return name


def kaplan_loss(n: float, d: float) -> float:
    """Kaplan et al. 2020, eq. 1.5 (nats/token on WebText2)."""
    return ((KAPLAN_NC / n) ** (KAPLAN_AN / KAPLAN_AD) + KAPLAN_DC / d) ** KAPLAN_AD


def optimal_params(law: str, flops: float) -> float:
    """N_opt(C) under `law`."""
    if law == "chinchilla":
        return CHINCHILLA_G * flops**CHINCHILLA_A
    if law == "kaplan":
        return KAPLAN_G * (flops / PF_DAY) ** KAPLAN_A
    return PARAMETRIC[check_law(law)].optimum(flops)[0]


def flops_for_params(law: str, params: float) -> float:
    """The budget C for which N_opt(C) = params (the inverse of `optimal_params`)."""
    if law == "chinchilla":
        return (params / CHINCHILLA_G) ** (1 / CHINCHILLA_A)
    if law == "kaplan":
        return (params / KAPLAN_G) ** (1 / KAPLAN_A) * PF_DAY
    p = PARAMETRIC[check_law(law)]
    s = p.alpha + p.beta
    g = (p.alpha * p.A / (p.beta * p.B)) ** (1 / s)
    return 6 * (params / g) ** (s / p.beta)


def loss(law: str, n: float, d: float) -> tuple[float | None, str]:
    """(predicted loss, what it is) at N, D."""
    if law in PARAMETRIC:
        return PARAMETRIC[law].loss(n, d), f"{law} L(N, D)"
    if law == "kaplan":
        return kaplan_loss(n, d), "Kaplan eq. 1.5 (WebText2, other tokens)"
    # approaches 1-2 predict no loss; their own paper's parametric fit gives one
    return CHINCHILLA_FIT.loss(n, d), "chinchilla-fit L(N, D)"


def optimum(
    law: str, flops: float | None = None, params: float | None = None, tokens: float | None = None
) -> Answer:
    """The law's answer. Two of (flops, params, tokens) may be given (the third is C = 6ND);
    with only `flops` the compute-optimal split; with only `params` or `tokens` the budget for
    which that is optimal."""
    check_law(law)
    given = sum(x is not None for x in (flops, params, tokens))
    for name, x in (("--flops", flops), ("--params", params), ("--tokens", tokens)):
        if x is not None and not (x > 0 and math.isfinite(x)):
            raise UserError(f"{name} must be a positive number, got {x}")
    if given == 0 or given == 3:
        raise UserError("give a budget (--flops or --gpu-hours) and at most one of --params/--tokens")
    if flops is not None and params is not None:
        tokens = flops / (6 * params)
    elif flops is not None and tokens is not None:
        params = flops / (6 * tokens)
    elif params is not None and tokens is not None:
        flops = 6 * params * tokens
    elif flops is not None:
        params = optimal_params(law, flops)
        tokens = flops / (6 * params)
    elif params is not None:
        flops = flops_for_params(law, params)
        tokens = flops / (6 * params)
    else:  # tokens only: solve D_opt(C) = tokens by bisection on log C (D_opt grows with C)
        assert tokens is not None
        lo, hi = math.log(1e6), math.log(1e40)
        for _ in range(200):
            mid = (lo + hi) / 2
            c = math.exp(mid)
            lo, hi = (mid, hi) if c / (6 * optimal_params(law, c)) < tokens else (lo, mid)
        flops = math.exp(lo)
        params = flops / (6 * tokens)
    value, note = loss(law, params, tokens)
    return Answer(law, params, tokens, flops, value, note)


def compare(
    flops: float | None = None, params: float | None = None, tokens: float | None = None
) -> list[Answer]:
    """Every law's answer side by side."""
    return [optimum(law, flops, params, tokens) for law in LAWS]
