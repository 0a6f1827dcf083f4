"""Metric-based filtering: score kept documents with a local causal LM, keep a perplexity band.

Runs after the rule-based filters, over the merged kept documents, because percentile bounds
need the whole corpus's scores. Only the float scores are held in memory, never the texts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from llmctl import hf
from llmctl.clean.config import PerplexityConfig
from llmctl.console import track
from llmctl.documents import ShardWriter, dumps, read_shards
from llmctl.parallel import batched


class Scorer:
    """Per-document perplexity (exp of the mean token NLL over the first max_tokens tokens)."""

    def __init__(self, cfg: PerplexityConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(cfg.model or "")  # the stage checked it is a model directory before any work
        self.cfg = cfg
        self.torch = torch
        hf.refuse_custom_code(path, "perplexity.model")
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.float32, trust_remote_code=False
        )
        self.model.eval()

    def __call__(self, texts: list[str]) -> list[float]:
        torch = self.torch
        scores = []
        with torch.inference_mode():
            for text in texts:  # one at a time: no padding, so the score equals the unbatched one
                ids = self.tok(text, return_tensors="pt", truncation=True, max_length=self.cfg.max_tokens)[
                    "input_ids"
                ]
                if ids.shape[1] < 2:
                    scores.append(math.inf)
                    continue
                loss = self.model(input_ids=ids, labels=ids).loss
                scores.append(float(torch.exp(loss)))
        return scores


def apply_band(
    cfg: PerplexityConfig, kept: Path, data: Path, rejected: Path, *, start: int
) -> dict[str, Any]:
    """Score every document under `kept`; write the band to `data`, the rest to `rejected`."""
    scorer = Scorer(cfg)
    n = sum(1 for _ in read_shards(kept))
    scores: list[float] = []
    for batch in batched(
        track(read_shards(kept), total=n, description="perplexity", unit="docs"), cfg.batch_size
    ):
        scores.extend(scorer([r["text"] for r in batch]))
    arr = np.array(scores, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo = cfg.min_ppl if cfg.min_ppl is not None else -math.inf
    hi = cfg.max_ppl if cfg.max_ppl is not None else math.inf
    if cfg.min_percentile is not None and len(finite):
        lo = max(lo, float(np.percentile(finite, cfg.min_percentile)))
    if cfg.max_percentile is not None and len(finite):
        hi = min(hi, float(np.percentile(finite, cfg.max_percentile)))
    n_rejected = 0
    with ShardWriter(data) as keep, ShardWriter(rejected, start=start) as drop:
        for record, ppl in zip(read_shards(kept), scores, strict=True):
            record["meta"]["perplexity"] = round(ppl, 4) if math.isfinite(ppl) else None
            if lo <= ppl <= hi:
                keep.write_bytes(dumps(record))
            else:
                drop.write_bytes(dumps({**record, "reason": "perplexity"}))
                n_rejected += 1
        kept_bytes = keep.bytes
    stats = {"low": lo, "high": hi, "median": float(np.median(finite)) if len(finite) else None}
    return {"rejected": n_rejected, "kept_bytes": kept_bytes, "stats": stats}
