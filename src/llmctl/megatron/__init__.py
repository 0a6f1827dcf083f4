"""The one module that imports megatron-core (STYLE: a single place, imported lazily).

Data side (tokenize writes, pretrain reads): `IndexedDatasetBuilder`/`IndexedDataset` files and
`GPTDataset` through `BlendedMegatronDatasetBuilder`. Importing megatron.core takes seconds and
warns about the missing TransformerEngine/Apex on CPU machines; both are kept out of the CLI.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from llmctl.errors import UserError

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
    "load_weights",
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


def has_transformer_engine() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def resolve_layer_spec(kind: str, *, gpu: bool, te: bool) -> str:
    """`model.layer_spec` -> the spec to build: auto picks TransformerEngine's fused layers when it
    is installed and a GPU is present; asking for transformer_engine without both is an error."""
    if kind == "auto":
        return "transformer_engine" if te and gpu else "local"
    if kind == "transformer_engine" and not (te and gpu):
        missing = "TransformerEngine is not installed" if not te else "there is no GPU"
        raise UserError(f"model.layer_spec=transformer_engine: {missing}; use local or auto")
    return kind


def gpt_layer_spec(kind: str) -> Any:
    """megatron-core's GPT layer spec: TransformerEngine modules or the local (plain torch) ones."""
    with warnings.catch_warnings():  # "Apex is not installed. Falling back to Torch Norm": as meant
        warnings.filterwarnings("ignore", message=".*Apex is not installed.*")
        from megatron.core.models.gpt import gpt_layer_specs

        if kind == "transformer_engine":
            return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec()
        return gpt_layer_specs.get_gpt_layer_local_spec()


def load_weights(model: Any, checkpoint: str | Path) -> None:
    """Model weights only (no optimizer state) from a distributed checkpoint of any TP/PP layout
    into `model` (this process's shard of it); dist_checkpointing reshards, and casts to the
    model's dtype (a bf16 checkpoint loads into an fp32 model exactly)."""
    from megatron.core import dist_checkpointing

    state = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(checkpoint))
    model.load_state_dict(state["model"])


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


# every checkpoint this process loads through megatron-core refuses foreign code (issue 13)
from llmctl.megatron import checkpoint as _checkpoint  # noqa: E402

_checkpoint.install()
