"""Configuration of `llmctl quantize` (recipes/quantize/*.yaml): the method and its knobs (bits, group
size, act-order, symmetry, damping), the calibration text (where from, how many samples of how many
tokens, the seed) and the held-out measurements of the report (perplexity, RTN baseline, tokens/s)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmctl.config import RunArgs, check
from llmctl.errors import ConfigError

METHODS = ("gptq", "rtn", "int8")
BITS = (2, 3, 4, 8)


@dataclass
class CalibrationConfig:
    data: str = ""
    """Calibration text: a tokenize artifact (its documents are decoded with its own tokenizer), a
    document artifact (clean, dedup), a JSONL/JSONL.zst/parquet file or directory of {"text"}
    records, or a .txt file; re-tokenized with the model's tokenizer (--calibration)."""
    samples: int = 128
    """Calibration sequences (GPTQ's Hessians are estimated from them)."""
    seq_len: int = 512
    """Tokens per calibration sequence (capped at the model's context)."""
    held_out_docs: float = 0.1
    """Share of the documents (at least one) kept out of calibration for the held-out perplexity."""
    held_out_windows: int = 32
    """Held-out windows of seq_len tokens on which perplexity is measured (fewer if the text is short)."""
    seed: int = 1234
    """Seed of the document split and of the choice of calibration windows."""
    text_field: str = "text"
    """JSON/parquet field that holds the text."""

    def __post_init__(self) -> None:
        check(self.samples >= 1, "calibration.samples", "must be >= 1")
        check(self.seq_len >= 8, "calibration.seq_len", "must be >= 8")
        check(0 < self.held_out_docs < 1, "calibration.held_out_docs", "must be in (0, 1)")
        check(self.held_out_windows >= 1, "calibration.held_out_windows", "must be >= 1")


@dataclass
class ReportConfig:
    compare_rtn: bool = True
    """Also quantize with RTN at the same bits/groups (not kept) to show GPTQ against its baseline."""
    rtn_tolerance: float = 0.001
    """The warning fires when GPTQ's held-out perplexity exceeds RTN's by more than this fraction
    (0.001 = 0.1%): below it the two differ by evaluation noise (the demo's barely trained model
    measured 1781.69 vs 1781.38); 0 warns on any loss."""
    layer_errors: bool = True
    """Per-layer relative reconstruction error ||W_q - W|| / ||W|| (table + PNG)."""
    generate_tokens: int = 32
    """New tokens generated (greedy) for the tokens/s measurement before and after; 0 = skip."""


@dataclass
class QuantizeConfig:
    model: str = ""
    """The model to quantize: a Hugging Face causal-LM directory or an llmctl artifact with hf/."""
    method: str = "gptq"
    """gptq (calibrated, Frantar et al. 2022), rtn (round-to-nearest, no calibration) or int8
    (LLM.int8(), Dettmers et al. 2022, through bitsandbytes: 8-bit weights, one scale per output
    row, input features with outliers above int8_threshold computed in 16-bit; no calibration)."""
    bits: int | None = None
    """Bits per weight: 4 or 8 (2 and 3 where the library packs them); unset: 4 (int8: 8, the
    only value it takes)."""
    group_size: int | None = None
    """Input features sharing one scale/zero (-1: one per output row); must divide every
    quantized layer's in_features. Unset: 128 (int8: -1, the only value it takes)."""
    int8_threshold: float = 6.0
    """int8 only: LLM.int8()'s outlier threshold (bitsandbytes' llm_int8_threshold): input features
    with a magnitude above it are multiplied in 16-bit; 6.0 is the paper's value."""
    desc_act: bool = False
    """GPTQ act-order: quantize columns in order of decreasing Hessian diagonal."""
    sym: bool = True
    """Symmetric quantization (zero point fixed at the middle of the range)."""
    damp: float = 0.01
    """GPTQ damping: this share of the mean Hessian diagonal is added to it (damp_percent)."""
    keep_fp: list[str] = field(default_factory=list)
    """Regexes (searched in names like model.layers.0.mlp.down_proj) of linear layers left in full
    precision, the same in every block: gptqmodel's dynamic "-:" rules; the checkpoint's
    modules_in_block_to_quantize lists the others, so that transformers converts only those."""
    batch_size: int = 4
    """Calibration sequences per forward pass during quantization."""
    pack_extension: bool = False
    """Pack with gptqmodel's C++ extension (compiled on first use, ~2.5 min, cached in
    ~/.cache/gptqmodel) instead of its torch path; off: the torch path needs no compiler."""
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    """Where the calibration and held-out text come from, and how much of it."""
    report: ReportConfig = field(default_factory=ReportConfig)
    """What report.md measures besides the quantized model itself."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}")
        if self.method == "int8":  # LLM.int8() has one format: bits and groups are not knobs of it
            for key, value, only in (("bits", self.bits, 8), ("group_size", self.group_size, -1)):
                check(
                    value in (None, only),
                    key,
                    f"{value} does not apply to method int8 (LLM.int8(): 8-bit weights, one scale per "
                    f"output row); leave it out or set {only}",
                )
            self.bits, self.group_size = 8, -1
        self.bits = 4 if self.bits is None else self.bits
        self.group_size = 128 if self.group_size is None else self.group_size
        check(self.int8_threshold >= 0, "int8_threshold", "must be >= 0 (0: no outlier columns)")
        check(self.bits in BITS, "bits", f"must be one of {', '.join(map(str, BITS))}")
        check(self.group_size == -1 or self.group_size >= 8, "group_size", "must be -1 or >= 8")
        check(0 < self.damp < 1, "damp", "must be in (0, 1)")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        for r in self.keep_fp:
            try:
                re.compile(r)
            except re.error as e:
                raise ConfigError(f"keep_fp: {r!r} is not a regular expression ({e})") from None


CLI_KEYS = {
    "bits": "bits",
    "group_size": "group_size",
    "method": "method",
    "calibration": "calibration.data",
}
