"""The training curves a post-training stage leaves in its artifact: loss_curve.csv (one row per
logged step, the columns the stage names) and loss_curve.png (the loss, and an accuracy when the
trainer logs one)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def write(history: list[dict[str, Any]], staging: Path, cols: list[str], accuracy: str, label: str) -> None:
    """`history`: the trainer's log rows ({"step", "loss", ...}); `accuracy`: the column plotted
    beside the loss (as `label`) when any row has it."""
    with open(staging / "loss_curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for h in history:
            w.writerow(["" if h.get(c) is None else (h[c] if c == "step" else f"{h[c]:.6f}") for c in cols])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["loss"] for h in history], marker=".", label="train loss")
    if any(h.get(accuracy) is not None for h in history):
        ax.plot(steps, [h.get(accuracy) for h in history], marker=".", label=label)
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(staging / "loss_curve.png", dpi=100, metadata={"Software": None})
    plt.close(fig)
