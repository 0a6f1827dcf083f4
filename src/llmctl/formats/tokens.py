"""The token data of a tokenize artifact: the layout tokenize writes and pretrain reads.

    from llmctl.formats import tokens; tokens.read_blend(Path("runs/tok"))["vocab_size"]

    blend.json                          the mixture: megatron-core's `blend` ([prefixes, weights]),
                                        Megatron-LM's `data_path`, per-source counts, the
                                        curriculum, vocab_size, eod, pad, dtype, seed
    tokenizer/                          loadable by `tokenizers` and by `transformers`
    data/NAME_text_document.{bin,idx}   megatron-core IndexedDataset pairs, one per source

The `.bin/.idx` files themselves are megatron-core's format, written by `llmctl.tokenize.indexed`
(the same bytes as megatron-core's builder, without importing torch) and read through
`llmctl.megatron.datasets`; prefixes in blend.json are relative to the artifact directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmctl.errors import UserError

BLEND = "blend.json"
TOKENIZER = "tokenizer"
DATA = "data"
_SUFFIX = "_text_document"  # what Megatron-LM's preprocess_data.py names a source's files


def prefix(name: str) -> str:
    """The `.bin/.idx` prefix of source NAME, relative to the artifact."""
    return f"{DATA}/{name}{_SUFFIX}"


def source_name(prefix: str) -> str:
    """data/web_text_document -> web (the inverse of `prefix`)."""
    return Path(prefix).name.removesuffix(_SUFFIX)


def check(directory: Path) -> None:
    """UserError unless `directory` holds token data (blend.json and tokenizer/)."""
    if not (directory / BLEND).is_file() or not (directory / TOKENIZER).is_dir():
        raise UserError(f"{directory} is not a tokenize artifact (no {BLEND} and {TOKENIZER}/)")


def read_blend(directory: Path) -> dict[str, Any]:
    """blend.json of the token data at `directory`."""
    return json.loads((directory / BLEND).read_text())


def blend_text(blend: dict[str, Any]) -> str:
    """blend.json's bytes (indented, newline-terminated), for an atomic write."""
    return json.dumps(blend, indent=2) + "\n"
