"""`llmctl pretrain`: megatron-core pre-training. See `stage.py` (and `train.py`, one rank)."""

import os

from llmctl.pretrain.config import PretrainConfig

__all__ = ["PretrainConfig", "export", "run", "under_torchrun", "world_size"]


def under_torchrun() -> bool:
    """Started by torchrun (torch.distributed.run) as one of its workers."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.pretrain.stage import run as _run

    return _run(*args, **kwargs)


def export(*args, **kwargs):
    """Checkpoint -> Hugging Face directory (see stage.export)."""
    from llmctl.pretrain.stage import export as _export

    return _export(*args, **kwargs)
