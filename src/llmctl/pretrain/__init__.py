"""`llmctl pretrain`: megatron-core pre-training. See `stage.py` (and `train.py`, one rank)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llmctl.errors import UserError
from llmctl.pretrain.config import ExportConfig, PretrainConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["ExportConfig", "PretrainConfig", "resolve_nproc", "run", "under_torchrun", "world_size"]


def under_torchrun() -> bool:
    """Started by torchrun (torch.distributed.run) as one of its workers."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_nproc(nproc: int | None) -> int | None:
    """The `nproc` key from --nproc: under torchrun the launcher decided the process count, and a
    different --nproc is a user error; otherwise --nproc as given (None: the recipe's)."""
    if not under_torchrun():
        return nproc
    if nproc is not None and nproc != world_size():
        raise UserError(f"--nproc {nproc} under torchrun, which started {world_size()} processes")
    return world_size()


def run(cfg: PretrainConfig) -> Manifest | None:
    """The stage entry point (see stage.run); the stage module is imported on first call, so that
    `llmctl --help` stays light. (`llmctl export` is stage.export(ExportConfig).)"""
    from llmctl.pretrain import stage

    return stage.run(cfg)
