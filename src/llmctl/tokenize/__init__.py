"""`llmctl tokenize`: tokenizer training and Megatron token data. See `stage.py`."""

from llmctl.tokenize.config import TokenizeConfig

__all__ = ["TokenizeConfig", "run"]


def run(*args, **kwargs):
    """The stage entry point (see stage.run); imported on first use so that the CLI stays light."""
    from llmctl.tokenize.stage import run as _run

    return _run(*args, **kwargs)
