"""`llmctl pretrain`: megatron-core pre-training. See `stage.py` (and `train.py`, one rank)."""

from llmctl.pretrain.config import PretrainConfig

__all__ = ["PretrainConfig", "export", "run"]


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.pretrain.stage import run as _run

    return _run(*args, **kwargs)


def export(*args, **kwargs):
    """Checkpoint -> Hugging Face directory (see stage.export)."""
    from llmctl.pretrain.stage import export as _export

    return _export(*args, **kwargs)
