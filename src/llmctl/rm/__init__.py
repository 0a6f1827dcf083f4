"""`llmctl rm`: reward models on TRL's RewardTrainer (see `stage.py`); `llmctl score` (score.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.rm.config import RmConfig, ScoreConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["RmConfig", "ScoreConfig", "run", "run_score"]


def run(cfg: RmConfig) -> Manifest | None:
    """The stage entry point (see stage.run); TRL is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.rm import stage

    return stage.run(cfg)


def run_score(cfg: ScoreConfig) -> Manifest:
    """`llmctl score` (see score.run)."""
    from llmctl.rm import score

    return score.run(cfg)
