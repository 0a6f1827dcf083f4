"""`llmctl dedup`: document, line and set-level de-duplication. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.dedup.config import DedupConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["DedupConfig", "run"]


def run(cfg: DedupConfig) -> Manifest | None:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.dedup import stage

    return stage.run(cfg)
