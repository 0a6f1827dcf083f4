"""`llmctl sft`: instruction tuning (and LoRA) on TRL's SFTTrainer. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.sft.config import SftConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["SftConfig", "run"]


def run(cfg: SftConfig) -> Manifest:
    """The stage entry point (see stage.run); the stage module, and TRL with it, is imported on
    first call, so that `llmctl --help` stays light."""
    from llmctl.sft import stage

    return stage.run(cfg)
