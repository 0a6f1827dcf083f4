"""`llmctl quantize`: post-training quantization (survey 5.4) with gptqmodel, or LLM.int8() with
bitsandbytes (int8.py). See `stage.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.quantize.config import QuantizeConfig

if TYPE_CHECKING:
    from llmctl.artifacts import Manifest

__all__ = ["QuantizeConfig", "run"]


def run(cfg: QuantizeConfig) -> Manifest:
    """The stage entry point (see stage.run); the stage module is imported on first call, and
    gptqmodel only inside it, so that `llmctl --help` stays light."""
    from llmctl.quantize import stage

    return stage.run(cfg)
