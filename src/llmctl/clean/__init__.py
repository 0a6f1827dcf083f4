"""`llmctl clean`: quality filtering and privacy reduction. See `stage.py`."""

from llmctl.clean.config import CleanConfig
from llmctl.clean.stage import run

__all__ = ["CleanConfig", "run"]
