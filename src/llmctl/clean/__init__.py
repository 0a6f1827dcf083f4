"""`llmctl clean`: quality filtering and privacy reduction. See `stage.py`."""

from llmctl.clean.config import CleanConfig

__all__ = ["CleanConfig", "run"]


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.clean.stage import run as _run

    return _run(*args, **kwargs)
