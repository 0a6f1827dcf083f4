"""`llmctl eval`: perplexity, multiple choice, generation; contamination-aware scores. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.eval.config import EvalConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["EvalConfig", "run"]


def run(cfg: EvalConfig) -> Manifest:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.eval import stage

    return stage.run(cfg)
