"""`llmctl tokenize`: tokenizer training and Megatron token data. See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.tokenize.config import TokenizeConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["TokenizeConfig", "run"]


def run(cfg: TokenizeConfig) -> Manifest:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light."""
    from llmctl.tokenize import stage

    return stage.run(cfg)
