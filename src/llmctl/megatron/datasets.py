"""megatron-core's token data: what tokenize writes and pretrain reads.

    from llmctl.megatron import datasets; len(datasets.IndexedDataset("runs/tok/data/web_text_document"))

`IndexedDatasetBuilder`/`IndexedDataset` files (`NAME_text_document.{bin,idx}`) and `GPTDataset`
through `BlendedMegatronDatasetBuilder`. megatron.core is imported when this module is, with its
warnings about the missing TransformerEngine/Apex on CPU machines silenced.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="megatron")
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder
    from megatron.core.tokenizers import MegatronTokenizerBase

__all__ = [
    "DType",
    "IndexedDataset",
    "IndexedDatasetBuilder",
    "build_gpt_datasets",
    "ensure_process_group",
    "optimal_dtype",
]


def optimal_dtype(vocab_size: int) -> type[np.number]:
    """uint16 when every token id fits, int32 otherwise (megatron-core's own rule)."""
    return DType.optimal_dtype(vocab_size)


class EodTokenizer(MegatronTokenizerBase):
    """What GPTDataset needs of a tokenizer for pre-tokenized data: the end-of-document and pad
    ids, the vocabulary size, and identifiers for megatron's dataset cache key."""

    def __init__(self, eod: int, pad: int, vocab_size: int, name: str = "llmctl"):
        super().__init__(name, {})
        self._eod, self._pad, self._vocab_size = eod, pad, vocab_size
        self.unique_identifiers = {
            "class": "EodTokenizer",
            "name": name,
            "eod": eod,
            "vocab_size": vocab_size,
        }

    def tokenize(self, text: str) -> list[int]:
        raise NotImplementedError("token data is pre-tokenized by llmctl tokenize")

    def detokenize(self, ids: list[int]) -> str:
        raise NotImplementedError("detokenize with the tokenizer/ directory of the tokenize artifact")

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @property
    def vocab(self) -> dict[str, int]:
        return {}

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def eod(self) -> int:
        return self._eod

    @property
    def pad(self) -> int:
        return self._pad


def ensure_process_group(scratch: Path) -> None:
    """BlendedDataset calls torch.distributed.get_rank() unconditionally: outside a distributed
    run (tests, inspection), start a one-process gloo group so that it has one to ask."""
    import torch.distributed as dist

    if not dist.is_initialized():
        scratch.mkdir(parents=True, exist_ok=True)
        store = scratch / f".pg-{os.getpid()}"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)


def build_gpt_datasets(
    blend: tuple[list[str], list[float] | None],
    *,
    sequence_length: int,
    samples: tuple[int, int, int],
    split: str,
    seed: int,
    eod: int,
    pad: int,
    vocab_size: int,
    cache: Path,
) -> list[Any]:
    """(train, valid, test) GPTDatasets over a blend of `.bin/.idx` prefixes."""
    ensure_process_group(cache)
    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=sequence_length,
        blend=blend,
        split=split,
        path_to_cache=str(cache),
        tokenizer=EodTokenizer(eod, pad, vocab_size),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    return BlendedMegatronDatasetBuilder(GPTDataset, list(samples), lambda: True, config).build()
