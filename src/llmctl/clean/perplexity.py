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
from llmctl.formats.documents import ShardWriter, dumps, read_shards
from llmctl.parallel import batched


class Scorer:
    """Per-document perplexity (exp of the mean token NLL over the first max_tokens tokens),
    scored batch_size documents per forward pass on `perplexity.device` in `perplexity.dtype`."""

    def __init__(self, cfg: PerplexityConfig):
        import torch

        path = Path(cfg.model or "")  # the stage checked it is a model directory before any work
        self.cfg = cfg
        self.torch = torch
        self.device = hf.resolve_device(cfg.device, key="perplexity.device")
        self.dtype = hf.resolve_dtype(cfg.dtype, self.device, key="perplexity.dtype")
        self.tok = hf.load_tokenizer(path, what="perplexity.model")
        self.model = hf.load_causal_lm(path, what="perplexity.model", dtype=self.dtype, device=self.device)
        tok = self.tok
        # any id will do for padding: padded positions are masked out of attention and of the loss
        self.pad = next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)

    def __call__(self, texts: list[str]) -> list[float]:
        """Perplexities of `texts`, one forward pass for all of them (right-padded, masked): a
        causal model's logits at a position do not see the padding after it, so each score
        equals the one-document score."""
        torch = self.torch
        encoded = self.tok(texts, truncation=True, max_length=self.cfg.max_tokens)["input_ids"]
        scores = [math.inf] * len(texts)
        rows = [i for i, ids in enumerate(encoded) if len(ids) >= 2]  # one token has nothing to predict
        if not rows:
            return scores
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, i in enumerate(rows):
            ids[k, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[k, : len(encoded[i])] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), ids[:, 1:], reduction="none"
            )  # [docs, positions]
            target = mask[:, 1:].to(nll.dtype)
            mean = (nll * target).sum(1) / target.sum(1)
        for k, value in zip(rows, torch.exp(mean).tolist(), strict=True):
            scores[k] = float(value)
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
    stats |= {"device": scorer.device, "dtype": hf.dtype_name(scorer.dtype)}  # resolved from auto
    return {"rejected": n_rejected, "kept_bytes": kept_bytes, "stats": stats}
