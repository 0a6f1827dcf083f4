"""`llmctl dedup`: document, line and set-level de-duplication. See `stage.py`."""

from llmctl.dedup.config import DedupConfig

__all__ = ["DedupConfig", "run"]


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.dedup.stage import run as _run

    return _run(*args, **kwargs)
