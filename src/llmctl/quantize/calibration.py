"""The calibration and held-out text of `llmctl quantize`: documents read from a tokenize artifact,
a document artifact, JSONL/parquet or text, split by document (seeded) so that no held-out text is
ever seen by the calibration, re-tokenized with the model's tokenizer and cut into windows.

    from llmctl.quantize import calibration
    data = calibration.build(cfg.calibration, tokenizer, context=2048)  # .samples, .held_out, .record
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.errors import UserError
from llmctl.quantize.config import CalibrationConfig

# Enough text for the windows asked for, with slack for tokenizers of ~4 characters per token;
# reading a whole pre-training corpus to calibrate on 128 windows would only cost time.
CHARS_PER_TOKEN_BUDGET = 16


@dataclass
class Calibration:
    samples: list[list[int]]
    """n calibration windows of seq_len token ids (the model's tokenizer)."""
    held_out: list[list[int]]
    """Held-out windows, cut from documents the calibration never sees."""
    record: dict[str, Any]
    """What the manifest records: source kind, documents/tokens on each side, seed, sizes."""


def read_texts(data: str, text_field: str, budget_chars: int) -> tuple[list[str], str]:
    """The documents of `data` in order (at most ~budget_chars of text) and the kind of source."""
    p = Path(data)
    if not data:
        raise UserError("quantize needs calibration text: --calibration DATA (or calibration.data)")
    if not p.exists():
        raise UserError(f"calibration.data: {p} does not exist")
    if (p / "blend.json").is_file() and (p / "tokenizer").is_dir():
        return _token_artifact_texts(p, budget_chars), "tokenize artifact"
    from llmctl.formats import documents

    texts: list[str] = []
    size = 0
    for doc in documents.read(documents.expand([p]), text_field=text_field):
        if isinstance(doc, documents.Malformed):
            continue  # calibration needs text, not every record; the count below says how much
        if doc.text.strip():
            texts.append(doc.text)
            size += len(doc.text)
        if size >= budget_chars:
            break
    kind = (
        "document artifact"
        if (p / "manifest.json").is_file()
        else ("text" if p.suffix == ".txt" else "jsonl")
    )
    if kind == "text" and len(texts) == 1:  # one .txt file: its paragraphs are the documents
        texts = [t for t in texts[0].split("\n\n") if t.strip()]
    return texts, kind


def _token_artifact_texts(directory: Path, budget_chars: int) -> list[str]:
    """A tokenize artifact's documents, decoded with its own tokenizer (the model's vocabulary may
    differ; the text is re-tokenized with the model's)."""
    from llmctl import hf
    from llmctl.formats import tokens
    from llmctl.megatron import datasets

    blend = tokens.read_blend(directory)
    tok = hf.load_tokenizer(directory / tokens.TOKENIZER, what=f"calibration.data {directory}")
    texts: list[str] = []
    size = 0
    for prefix in blend["blend"][0]:
        ds = datasets.IndexedDataset(str(directory / prefix))
        for i in range(len(ds)):
            text = tok.decode([int(t) for t in ds[i]], skip_special_tokens=True)
            if text.strip():
                texts.append(text)
                size += len(text)
            if size >= budget_chars:
                return texts
    return texts


def split_documents(texts: list[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """(calibration, held-out) documents: a seeded shuffle, then `share` of them (>= 1) held out.
    A document is on one side only, so the held-out perplexity is on text GPTQ never saw."""
    if len(texts) < 2:
        raise UserError(
            f"calibration.data: {len(texts)} document(s); at least 2 are needed (one to calibrate on, "
            "one held out for perplexity)"
        )
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_held = min(len(texts) - 1, max(1, round(share * len(texts))))
    held = sorted(order[:n_held])
    calib = sorted(order[n_held:])
    return [texts[i] for i in calib], [texts[i] for i in held]


def stream(tokenizer: Any, texts: list[str]) -> list[int]:
    """The documents' tokens back to back, each followed by eos (when the tokenizer has one)."""
    eos = tokenizer.eos_token_id
    out: list[int] = []
    for t in texts:
        out.extend(tokenizer(t, add_special_tokens=False)["input_ids"])
        if eos is not None:
            out.append(eos)
    return out


def windows(ids: list[int], seq_len: int, n: int, seed: int | None) -> list[list[int]]:
    """n windows of seq_len tokens from `ids`: at seeded random offsets (seed given; windows may
    overlap when the text is short), else consecutive and disjoint (at most n)."""
    if len(ids) < seq_len:
        return []
    if seed is None:
        return [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)][:n]
    rng = random.Random(seed)
    return [ids[s : s + seq_len] for s in (rng.randrange(len(ids) - seq_len + 1) for _ in range(n))]


def build(cfg: CalibrationConfig, tokenizer: Any, context: int | None) -> Calibration:
    """Calibration windows and held-out windows for a model with this tokenizer and context."""
    seq_len = min(cfg.seq_len, context) if context else cfg.seq_len
    budget = (cfg.samples + cfg.held_out_windows) * seq_len * CHARS_PER_TOKEN_BUDGET
    texts, kind = read_texts(cfg.data, cfg.text_field, budget)
    calib_docs, held_docs = split_documents(texts, cfg.held_out_docs, cfg.seed)
    calib_ids, held_ids = stream(tokenizer, calib_docs), stream(tokenizer, held_docs)
    samples = windows(calib_ids, seq_len, cfg.samples, cfg.seed)
    held = windows(held_ids, seq_len, cfg.held_out_windows, None)
    if not samples:
        raise UserError(
            f"calibration.data: the calibration documents hold {len(calib_ids)} tokens, fewer than one "
            f"window of calibration.seq_len={seq_len}; give more text or a shorter seq_len"
        )
    if not held:
        raise UserError(
            f"calibration.data: the held-out documents hold {len(held_ids)} tokens, fewer than one window "
            f"of calibration.seq_len={seq_len}; raise calibration.held_out_docs or lower seq_len"
        )
    record = {
        "source": cfg.data,
        "kind": kind,
        "documents": len(texts),
        "calibration_documents": len(calib_docs),
        "held_out_documents": len(held_docs),
        "calibration_tokens": len(calib_ids),
        "held_out_tokens": len(held_ids),
        "samples": len(samples),
        "seq_len": seq_len,
        "held_out_windows": len(held),
        "seed": cfg.seed,
    }
    return Calibration(samples, held, record)
