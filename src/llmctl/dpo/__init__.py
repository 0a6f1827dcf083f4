"""`llmctl dpo`: alignment without RLHF (survey 5.2.4) on TRL's DPOTrainer. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.dpo.config import DpoConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["DpoConfig", "run"]


def run(cfg: DpoConfig) -> Manifest | None:
    """The stage entry point (see stage.run); the stage module, and TRL with it, is imported on
    first call, so that `llmctl --help` stays light."""
    from llmctl.dpo import stage

    return stage.run(cfg)
