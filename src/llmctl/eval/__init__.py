"""`llmctl eval`: perplexity, multiple choice, generation; contamination-aware scores. See `stage.py`."""

from llmctl.eval.config import EvalConfig

__all__ = ["EvalConfig", "run"]


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.eval.stage import run as _run

    return _run(*args, **kwargs)
