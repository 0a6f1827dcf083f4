"""`llmctl pretrain`: megatron-core pre-training. See `stage.py` (and `train.py`, one rank)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.launch import resolve_nproc, under_torchrun, world_size
from llmctl.pretrain.config import ExportConfig, PretrainConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["ExportConfig", "PretrainConfig", "resolve_nproc", "run", "under_torchrun", "world_size"]


def run(cfg: PretrainConfig) -> Manifest | None:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light. (`llmctl export` is stage.export(ExportConfig).)"""
    from llmctl.pretrain import stage

    return stage.run(cfg)
