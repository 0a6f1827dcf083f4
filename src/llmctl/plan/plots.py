"""PNGs for `llmctl plan`: IsoFLOP curves with each law's chosen point, and a fit to one's runs.

llmctl plan budget --flops 5.76e23 --plot budget.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmctl.plan.laws import Answer, Parametric


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(7, 4.5), dpi=100)


def _save(plt, fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def budget(path: Path, law: Parametric, law_name: str, flops: float, answers: list[Answer]) -> None:
    """Loss vs N along iso-FLOP lines C/100 ... 100C of `law`, with every law's N at C marked."""
    plt, fig, ax = _figure()
    for k, c in enumerate(flops * np.logspace(-2, 2, 5)):
        n_opt = law.optimum(c)[0]
        n = np.geomspace(n_opt / 30, n_opt * 30, 200)
        ax.plot(n, [law.loss(x, c / (6 * x)) for x in n], color=plt.cm.viridis(k / 4), label=f"C = {c:.2g}")
    for i, a in enumerate(answers):
        ax.plot(
            a.params,
            law.loss(a.params, flops / (6 * a.params)),
            "os^D"[i % 4],
            color="crimson",
            label=f"{a.law}: N = {a.params:.3g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel(f"loss ({law_name} L(N, C/6N))")
    ax.set_title(f"IsoFLOP curves; budget C = {flops:.3g} FLOPs")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def fitted(
    path: Path,
    params: list[float],
    tokens: list[float],
    losses: list[float],
    law: Parametric,
    flops: float | None = None,
) -> None:
    """The runs (loss vs training compute 6ND) and the fitted L(N, D) for each run's N."""
    plt, fig, ax = _figure()
    sizes = sorted(set(params))
    lo, hi = min(tokens) / 3, max(tokens) * 3
    for k, n in enumerate(sizes):
        color = plt.cm.viridis(k / max(1, len(sizes) - 1))
        d = np.geomspace(lo, hi, 100)
        ax.plot(6 * n * d, [law.loss(n, x) for x in d], color=color, alpha=0.7)
        pts = [(6 * n * t, x) for p, t, x in zip(params, tokens, losses, strict=True) if p == n]
        ax.scatter(*zip(*pts, strict=True), color=color, label=f"N = {n:.3g}", zorder=3)
    low = min(losses)
    if flops is not None:
        n_opt, d_opt = law.optimum(flops)
        low = min(low, law.loss(n_opt, d_opt))
        ax.plot(
            flops,
            law.loss(n_opt, d_opt),
            "*",
            color="crimson",
            markersize=14,
            label=f"optimum at C = {flops:.2g}: N = {n_opt:.3g}",
        )
    ax.set_ylim(low * 0.9, max(losses) * 1.15)  # the runs and the optimum, not a curve's far end
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs 6ND")
    ax.set_ylabel("validation loss")
    ax.set_title(f"L = {law.E:.3g} + {law.A:.3g}/N^{law.alpha:.3f} + {law.B:.3g}/D^{law.beta:.3f}")
    ax.legend(fontsize=7)
    _save(plt, fig, path)
