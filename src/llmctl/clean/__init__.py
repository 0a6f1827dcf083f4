"""`llmctl clean`: quality filtering and privacy reduction. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.clean.config import CleanConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["CleanConfig", "run"]


def run(cfg: CleanConfig) -> Manifest | None:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.clean import stage

    return stage.run(cfg)
