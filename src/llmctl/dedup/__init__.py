"""`llmctl dedup`: document, line and set-level de-duplication. See `stage.py`."""

from llmctl.dedup.config import DedupConfig
from llmctl.dedup.stage import run

__all__ = ["DedupConfig", "run"]
