"""`llmctl tokenize`: train (or reuse) a tokenizer and write Megatron token data (survey 4.1).

    llmctl tokenize runs/demo/dedup --out runs/demo/tokenize --config recipes/tokenize/tiny.yaml
    llmctl tokenize --input web=runs/clean_web:0.7 --input code=runs/clean_code:0.3 --out runs/tok

Per source NAME: `data/NAME_text_document.{bin,idx}` in megatron-core's IndexedDataset format
(written by `indexed.py` without importing megatron-core; one document per input record, EOD
appended; uint16 when the vocabulary fits). `blend.json` holds the mixture in megatron-core's
blend form (and the curriculum), and `tokenizer/` the tokenizer. Encoding runs in worker
processes over chunks in input order, so the `.bin/.idx` bytes do not depend on the worker count.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmctl import artifacts
from llmctl.artifacts import Manifest, write_atomic
from llmctl.config import to_dict
from llmctl.console import data_progress, info
from llmctl.errors import UserError
from llmctl.formats import documents, tokens
from llmctl.formats.documents import Document, Malformed
from llmctl.formats.tokens import prefix
from llmctl.parallel import batched, ordered_map, resolve_workers
from llmctl.tokenize import tokenizer as tk
from llmctl.tokenize.config import TokenizeConfig
from llmctl.tokenize.indexed import IndexedWriter, optimal_dtype

_tok: Any = None  # the tokenizers.Tokenizer, set in the parent and inherited by forked workers
_eod = 0
_dtype: type[np.number] = np.int32
_unk: int | None = None
# Texts per encode_batch call: all of a chunk in the parent, where tokenizers' threads share it;
# fewer in a (single-threaded) worker process, where a Python list of ids and a tokenizers
# Encoding (~80 bytes a token, offsets and token strings included) are held for every text of
# the call at once: 512 long documents made each worker grow by 100-200 MB.
_WORKER_BATCH = 32
_batch = 512


def run(cfg: TokenizeConfig) -> Manifest:
    """Train (or reuse) the tokenizer on `cfg.sources`, encode each source, commit `cfg.run.out`."""
    out = cfg.run.out_dir("tokenize")
    if not cfg.sources:
        raise UserError("tokenize needs input: positional INPUT paths or --input NAME=PATH[:WEIGHT]")
    sources = {name: documents.expand(src.paths) for name, src in cfg.sources.items()}
    for name, files in sources.items():
        if all(s.path.stat().st_size == 0 for s in files):
            raise UserError(f"source '{name}': every input file is empty; nothing to tokenize")
    if cfg.tokenizer.path is None:
        tk.check_vocab(cfg.tokenizer)
    else:
        tk.load(cfg.tokenizer.path)  # a tokenizer that does not load is exit 2 before any work
    inputs = [p for src in cfg.sources.values() for p in src.paths]
    if cfg.tokenizer.path is not None:
        inputs.append(cfg.tokenizer.path)
    recorded = to_dict(cfg)
    recorded.pop("workers")
    art = artifacts.begin(
        "tokenize",
        out,
        config=recorded,
        inputs=inputs,
        force=cfg.run.force,
        resume=cfg.run.resume,
        input_suffixes=documents.SUFFIXES,
    )
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        return _tokenize(cfg, art, sources)


def _tokenize(
    cfg: TokenizeConfig, art: artifacts.StageRun, sources: dict[str, list[documents.Source]]
) -> Manifest:
    """Train (or reuse) the tokenizer, encode every source, commit."""
    t0 = time.perf_counter()
    tok = _resumed_tokenizer(art) if art.resumed else None
    if tok is None:
        tok = _tokenizer(cfg, sources)
        _save_tokenizer(tok, cfg, art)
    else:
        info(f"reusing the tokenizer trained before the interruption ({art.staging / 'tokenizer'})")
    train_seconds = time.perf_counter() - t0
    _release_freed_memory()
    eod = tk.token_id(tok, cfg.tokenizer.eod, "eod")
    pad = tok.token_to_id(cfg.tokenizer.pad)
    vocab = tok.get_vocab_size()
    dtype = optimal_dtype(vocab)
    per_source = {}
    _clear_encoded(art.staging)  # a resumed run encodes every source again (it is the cheap part)
    (art.staging / "data").mkdir()
    for name, files in sources.items():
        per_source[name] = _encode_source(cfg, name, files, art.staging, tok, eod, dtype)
    blend = _blend(cfg, per_source, eod, pad, vocab, dtype)
    write_atomic(art.staging / tokens.BLEND, tokens.blend_text(blend))
    metrics: dict[str, Any] = {
        "vocab_size": vocab,
        "dtype": np.dtype(dtype).name,
        "eod_id": eod,
        "tokenizer": "reused " + str(cfg.tokenizer.path)
        if cfg.tokenizer.path
        else f"trained {cfg.tokenizer.model}",
        "tokenizer_seconds": round(train_seconds, 3),
        "sources": per_source,
        "documents": sum(s["documents"] for s in per_source.values()),
        "tokens": sum(s["tokens"] for s in per_source.values()),
        "tokens_per_s": round(
            sum(s["tokens"] for s in per_source.values())
            / max(1e-9, sum(s["seconds"] for s in per_source.values()))
        ),
    }
    summary = {k: metrics[k] for k in ("documents", "tokens", "vocab_size", "dtype", "tokens_per_s")}
    summary["bytes_per_token"] = round(
        sum(s["bytes"] for s in per_source.values()) / max(1, metrics["tokens"]), 3
    )
    (art.staging / _TOKENIZER_DONE).unlink(missing_ok=True)
    return art.commit(metrics, summary)


_TOKENIZER_DONE = ".llmctl-tokenizer-done.json"


def _release_freed_memory() -> None:
    """Hand the heap the BPE trainer freed back to the system before the encoding workers fork:
    glibc keeps it mapped (a 20 MB sample leaves ~100 MB), and each forked worker would count it
    in its RSS again. A no-op where the C library has no malloc_trim (musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _save_tokenizer(tok: Any, cfg: TokenizeConfig, art: artifacts.StageRun) -> None:
    """Save into tokenizer/ and mark it complete, with what it was trained from: a resumed run
    reuses it only for the same config and inputs."""
    target = art.staging / tokens.TOKENIZER
    if target.exists():
        shutil.rmtree(target)
    partial = art.staging / ".llmctl-tokenizer.partial"
    if partial.exists():
        shutil.rmtree(partial)
    tk.save(tok, cfg.tokenizer, partial, cfg.tokenizer.path)
    os.replace(partial, target)
    write_atomic(art.staging / _TOKENIZER_DONE, json.dumps(_tokenizer_key(art)))


def _tokenizer_key(art: artifacts.StageRun) -> dict[str, Any]:
    return {"config": art.config, "inputs": [e["sha256"] for e in art.inputs]}


def _resumed_tokenizer(art: artifacts.StageRun) -> Any | None:
    """The tokenizer a killed run saved, when it was complete and built from the same config and
    inputs; None otherwise (then it is trained again)."""
    done = art.staging / _TOKENIZER_DONE
    try:
        key = json.loads(done.read_text())
    except (OSError, ValueError):
        return None
    if key != _tokenizer_key(art):
        return None
    return tk.load(art.staging / tokens.TOKENIZER)


def _clear_encoded(staging: Path) -> None:
    """Token data a killed run left behind (a resumed run writes it again)."""
    shutil.rmtree(staging / "data", ignore_errors=True)
    for f in [*staging.glob("rejected-*.jsonl.zst"), staging / tokens.BLEND]:
        f.unlink(missing_ok=True)


def _texts(cfg: TokenizeConfig, files: list[documents.Source]) -> Iterator[str]:
    for item in documents.read(files, text_field=cfg.input.text_field, id_field=cfg.input.id_field):
        if isinstance(item, Document) and item.text and not _too_long(item.text, cfg.input.max_word_chars):
            yield item.text


def _too_long(text: str, max_word_chars: int) -> bool:
    """A run of non-space characters longer than the cap (linear: no regex backtracking)."""
    if len(text) <= max_word_chars:
        return False
    # Fast path, in numpy: the longest run of bytes between ASCII spaces bounds every word's
    # length in characters from above (str.split also splits at other spaces). A Python loop
    # over the words cost 16 ns a character: a CPU second on a 73 MB corpus, twice with training.
    b = np.frombuffer(text.encode("utf-8", errors="surrogatepass"), dtype=np.uint8)
    runs = np.diff(np.flatnonzero(_ASCII_SPACE[b]), prepend=-1, append=len(b)) - 1
    if runs.max() <= max_word_chars:
        return False
    return max(map(len, text.split()), default=0) > max_word_chars


_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[list(b" \t\n\r\x0b\x0c")] = True


def _tokenizer(cfg: TokenizeConfig, sources: dict[str, list[documents.Source]]):
    if cfg.tokenizer.path is not None:
        info(f"reusing the tokenizer at {cfg.tokenizer.path}")
        return tk.load(cfg.tokenizer.path)
    total_weight = sum(s.weight for s in cfg.sources.values())

    def sample() -> Iterator[str]:
        """Text for training, from every source in proportion to its weight, in input order."""
        for name, files in sources.items():
            budget = cfg.tokenizer.sample_bytes * cfg.sources[name].weight / total_weight
            used = 0
            for text in _texts(cfg, files):
                yield text
                used += len(text.encode("utf-8", errors="surrogatepass"))
                if used >= budget:
                    break

    seen = [0]

    def counted() -> Iterator[str]:
        for t in sample():
            seen[0] += 1
            yield t

    info(f"training a {cfg.tokenizer.model} tokenizer (vocab {cfg.tokenizer.vocab_size:,})")
    tok = tk.train(cfg.tokenizer, counted())
    if seen[0] == 0:
        raise UserError(
            "the corpus holds no text to train a tokenizer on (every document is empty or malformed)"
        )
    return tok


def _encode_chunk(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """The texts' token ids back to back, each text's followed by EOD; each text's length (EOD
    included); the number of unknown tokens among them. One array per chunk, not one per text,
    so that a worker hands the parent one buffer to pickle and one write to make."""
    parts = [_encode_ids(texts[i : i + _batch]) for i in range(0, len(texts), _batch)]
    if _batch < len(texts):  # a worker process: give back what the encodings held
        _release_freed_memory()
    flat = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    unk = int(np.count_nonzero(flat == _unk)) if _unk is not None else 0
    return flat, lengths, unk


def _encode_ids(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = [enc.ids for enc in _tok.encode_batch(texts, add_special_tokens=False)]
    lengths = np.fromiter((len(x) + 1 for x in ids), dtype=np.int32, count=len(ids))
    flat = np.empty(int(lengths.sum()), dtype=_dtype)
    ends = np.cumsum(lengths)
    flat[ends - 1] = _eod
    for doc, end, n in zip(ids, ends.tolist(), lengths.tolist(), strict=True):
        flat[end - n : end - 1] = doc
    return flat, lengths


def _encode_source(
    cfg: TokenizeConfig,
    name: str,
    files: list[documents.Source],
    staging: Path,
    tok: Any,
    eod: int,
    dtype: type[np.number],
) -> dict[str, Any]:
    global _tok, _eod, _dtype, _unk, _batch
    _tok, _eod, _dtype = tok, eod, dtype
    _unk = tok.token_to_id(cfg.tokenizer.unk) if cfg.tokenizer.model != "bpe" or cfg.tokenizer.path else None
    workers = resolve_workers(cfg.workers)
    # one tokenizer thread per worker process (tokenizers' own thread pool does not survive fork)
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if workers > 1 else "true"
    _batch = _WORKER_BATCH if workers > 1 else cfg.chunk_size
    cursor = documents.Cursor()
    stats = {"documents": 0, "tokens": 0, "bytes": 0, "chars": 0, "skipped": 0, "too_long": 0}
    unk_total = 0
    skipped: list[dict] = []
    writer = IndexedWriter(staging / f"{prefix(name)}.bin", dtype)
    t0 = time.perf_counter()

    def texts() -> Iterator[str]:
        for item in documents.read(
            files, text_field=cfg.input.text_field, id_field=cfg.input.id_field, cursor=cursor
        ):
            if isinstance(item, Malformed):
                skipped.append(documents.malformed_record(item))
                continue
            if not item.text:
                skipped.append({**item.to_dict(), "reason": "empty"})
                continue
            if _too_long(item.text, cfg.input.max_word_chars):
                skipped.append({**item.to_dict(), "reason": "too_long"})
                stats["too_long"] += 1
                continue
            stats["chars"] += len(item.text)
            stats["bytes"] += len(item.text.encode("utf-8", errors="surrogatepass"))
            yield item.text

    with data_progress(f"tokenize: {name}", sum(s.path.stat().st_size for s in files)) as bar:
        for flat, lengths, unk in ordered_map(
            _encode_chunk, batched(texts(), cfg.chunk_size), workers=workers
        ):
            writer.add_documents(flat, lengths)
            stats["tokens"] += len(flat)
            stats["documents"] += len(lengths)
            unk_total += unk
            bar.update(cursor.position(), len(lengths))
    writer.finalize(staging / f"{prefix(name)}.idx")
    seconds = time.perf_counter() - t0
    if stats["documents"] == 0:
        raise UserError(f"source '{name}': no documents to tokenize (every record is empty or malformed)")
    if skipped:
        documents.write_jsonl_zst(staging / f"rejected-{name}.jsonl.zst", skipped)
    stats["skipped"] = len(skipped)
    stats["bytes_per_token"] = round(stats["bytes"] / stats["tokens"], 4)
    stats["chars_per_token"] = round(stats["chars"] / stats["tokens"], 4)
    if _unk is not None:
        stats["unk_rate"] = round(unk_total / stats["tokens"], 6)
    stats["seconds"] = round(seconds, 3)
    stats["tokens_per_s"] = round(stats["tokens"] / max(seconds, 1e-9))
    return stats


def _blend(cfg: TokenizeConfig, per_source: dict, eod: int, pad: int | None, vocab: int, dtype: Any) -> dict:
    """The mixture in megatron-core's forms: `blend` for BlendedMegatronDatasetConfig and the
    flattened `data_path` list of Megatron-LM's --data-path; prefixes relative to this file."""
    names = list(cfg.sources)
    weights = [cfg.sources[n].weight for n in names]
    prefixes = [prefix(n) for n in names]
    return {
        "blend": [prefixes, weights],
        "data_path": [x for w, p in zip(weights, prefixes, strict=True) for x in (str(w), p)],
        "sources": {
            n: {
                "prefix": prefix(n),
                "weight": cfg.sources[n].weight,
                "tokens": per_source[n]["tokens"],
                "documents": per_source[n]["documents"],
            }
            for n in names
        },
        "curriculum": [
            {"blend": [[prefix(n) for n in st.blend], list(st.blend.values())], "tokens": st.tokens}
            for st in cfg.curriculum
        ],
        "tokenizer": tokens.TOKENIZER,
        "vocab_size": vocab,
        "eod": eod,
        "pad": pad,
        "dtype": np.dtype(dtype).name,
        "seed": cfg.seed,
    }
