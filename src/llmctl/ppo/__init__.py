"""`llmctl ppo` (RLHF with PPO, see `stage.py`) and `llmctl bon` (best-of-N sampling, `bon.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.ppo.config import BonConfig, PpoConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["BonConfig", "PpoConfig", "run", "run_bon"]


def run(cfg: PpoConfig) -> Manifest | None:
    """The stage entry point (see stage.run); TRL is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.ppo import stage

    return stage.run(cfg)


def run_bon(cfg: BonConfig) -> Manifest:
    """`llmctl bon` (see bon.run)."""
    from llmctl.ppo import bon

    return bon.run(cfg)
