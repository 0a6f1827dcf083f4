"""megatron-core distributed checkpoints: save, load (full or weights only), and load safely.

    from llmctl.megatron import checkpoint; checkpoint.verify(Path("runs/pt/checkpoints/iter_0000100"))

`save`/`load` write and read the model, optimizer and the loop's own state through
dist_checkpointing (loadable at another TP/PP/DP layout), with a SHA256SUMS per checkpoint;
`load_weights` reads the model only, and `load_cpu_model` builds a TP=1, PP=1 fp32 model on the
CPU and loads into it (what export reads: no trainer, DDP or optimizer).

Loading without running code from the checkpoint (issue 13):
A megatron-core checkpoint is three kinds of pickle: `.metadata` (torch.distributed.checkpoint's
index, read with plain `pickle.load`), `common.pt` (torch.load) and the byte items inside the
`.distcp` files (torch.load with weights_only=False in torch's load planner). A crafted file of
any kind would run code as it loads. `install()` closes all three in the process that loads:
`.metadata` goes through an unpickler that admits only the checkpoint-metadata classes, and every
torch.load is forced to weights_only (torch's own allow-list). `verify()` does the same checks up
front in the CLI process, so that a hostile checkpoint is a user error (exit 2) naming the file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from llmctl.errors import UserError

if TYPE_CHECKING:
    from llmctl.pretrain.config import PretrainConfig

CHECKSUMS = "SHA256SUMS"  # per checkpoint directory, `sha256sum -c` format

_DCP = "torch.distributed.checkpoint."
# every class a `.metadata` of torch 2.13 + megatron-core 0.16.1 holds (checked on real checkpoints)
ALLOWED = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # torch.layout pickles as _get_layout("torch.strided")
    (_DCP + "filesystem", "_StorageInfo"),
    (_DCP + "metadata", "BytesStorageMetadata"),
    (_DCP + "metadata", "ChunkStorageMetadata"),
    (_DCP + "metadata", "Metadata"),
    (_DCP + "metadata", "MetadataIndex"),
    (_DCP + "metadata", "StorageMeta"),
    (_DCP + "metadata", "TensorProperties"),
    (_DCP + "metadata", "TensorStorageMetadata"),
    (_DCP + "metadata", "_MEM_FORMAT_ENCODING"),
    (_DCP + "planner", "SavePlan"),
    (_DCP + "planner", "TensorWriteData"),
    (_DCP + "planner", "WriteItem"),
    (_DCP + "planner", "WriteItemType"),
    ("collections", "OrderedDict"),
}


class UnsafeCheckpoint(UserError):
    """A checkpoint file that is not what llmctl and megatron-core write (possibly hostile)."""


class MetadataUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the classes of checkpoint metadata (and torch dtypes):
    any other global (os.system, builtins.eval, ...) is refused before it can be called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "torch":
            import torch

            if isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: not checkpoint metadata")


def load_metadata(f: BinaryIO, name: str | os.PathLike) -> Any:
    """A `.metadata` file's Metadata through MetadataUnpickler; UnsafeCheckpoint names the file."""
    try:
        return MetadataUnpickler(f).load()
    except Exception as e:  # any malformed pickle (bad opcode, EOF, refused global) is a bad file
        raise UnsafeCheckpoint(
            f"{name}: not a checkpoint metadata file llmctl can load safely ({e}); refusing to load it"
        ) from None


def _read_metadata(self: Any, *args: Any, **kwargs: Any) -> Any:
    """FileSystemReader.read_metadata (torch 2.13) with MetadataUnpickler in place of pickle.load."""
    from torch.distributed.checkpoint.metadata import StorageMeta

    path = self._get_metadata_path(kwargs.get("rank"))
    with self.fs.create_stream(path, "rb") as f:
        metadata = load_metadata(f, path)
    if getattr(metadata, "storage_meta", None) is None:
        metadata.storage_meta = StorageMeta()
    metadata.storage_meta.load_id = self.load_id
    return metadata


def install() -> None:
    """Make every checkpoint load in this process (and the ranks it starts) refuse foreign code."""
    from torch.distributed.checkpoint import FileSystemReader

    # megatron-core reads through FileSystemReader (or its caching subclass): patch the one method
    FileSystemReader.read_metadata = _read_metadata  # type: ignore[method-assign]
    # torch's documented switch: weights_only even where a caller passes False (the load planner)
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"


def verify(ckpt: Path) -> None:
    """Exit-2 check before any rank starts: `.metadata` and `common.pt` load without foreign code."""
    import torch

    meta = ckpt / ".metadata"
    if not meta.is_file():
        raise UserError(f"{ckpt}: no .metadata file; not a megatron-core distributed checkpoint")
    with open(meta, "rb") as f:
        load_metadata(f, meta)
    common = ckpt / "common.pt"
    if common.is_file():
        try:
            torch.load(common, map_location="cpu", weights_only=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsafeCheckpoint(
                f"{common}: does not load as plain weights ({first}); refusing to load it"
            ) from None


def write_checksums(path: Path) -> None:
    """sha256 of every file of a saved checkpoint, so resume and init_checkpoint can refuse a
    corrupt one by name (a 64 KB overwrite used to resume silently and fail as a loss spike)."""
    from llmctl.artifacts import sha256_file

    lines = [
        f"{sha256_file(f)}  {f.relative_to(path).as_posix()}\n"
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name != CHECKSUMS
    ]
    tmp = path / f".{CHECKSUMS}.tmp"
    tmp.write_text("".join(lines))
    os.replace(tmp, path / CHECKSUMS)


def sharded_state(model: Any, optimizer: Any, *, loading: bool = False) -> dict[str, Any]:
    """The model's (unwrapped from DDP) and the optimizer's sharded state dicts."""
    model_sd = model.sharded_state_dict()
    # is_loading creates the Adam moments first, so that the template has tensors to load into
    # fully_reshardable: optimizer state that loads at another TP/PP/DP layout (the default
    # fully_sharded_model_space relies on flattened ranges this dist_checkpointing rejects)
    metadata = {"distrib_optim_sharding_type": "fully_reshardable"}
    optimizer_sd = optimizer.sharded_state_dict(model_sd, is_loading=loading, metadata=metadata)
    return {"model": model_sd, "optimizer": optimizer_sd}


def save(path: Path, model: Any, optimizer: Any, common: dict[str, Any]) -> None:
    """Model and optimizer shards, plus `common` (plain state every rank holds alike), into the
    existing directory `path`; every rank calls it."""
    from megatron.core import dist_checkpointing

    state = sharded_state(model, optimizer)
    state.update(common)
    dist_checkpointing.save(state, str(path))


def load(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Model and optimizer state from `path`, resharded to this run's layout; the common state."""
    from megatron.core import dist_checkpointing

    state = dist_checkpointing.load(sharded_state(model, optimizer, loading=True), str(path))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return dist_checkpointing.load_common_state_dict(str(path))


def load_weights(model: Any, checkpoint: str | Path) -> None:
    """Model weights only (no optimizer state) from a distributed checkpoint of any TP/PP layout
    into `model` (this process's shard of it); dist_checkpointing reshards, and casts to the
    model's dtype (a bf16 checkpoint loads into an fp32 model exactly)."""
    from megatron.core import dist_checkpointing

    state = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(checkpoint))
    model.load_state_dict(state["model"])


def load_cpu_model(cfg: PretrainConfig, checkpoint: Path, vocab: int, scratch: Path) -> Any:
    """The checkpoint's weights in a TP=1, PP=1 fp32 GPTModel (local layer spec: its checkpoint
    keys are TransformerEngine's, so a TE-trained checkpoint loads) on the CPU of this process:
    weights only, no DDP, optimizer or trainer."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from llmctl.megatron import cpu
    from llmctl.megatron.datasets import ensure_process_group
    from llmctl.megatron.model import gpt_model, padded_vocab, transformer_config

    if not cpu.apply():
        raise RuntimeError(
            "export runs on the CPU: hide the GPUs (CUDA_VISIBLE_DEVICES=) before torch starts"
        )
    ensure_process_group(scratch)  # a single-rank gloo group: dist_checkpointing needs one
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(1, 1)
    model_parallel_cuda_manual_seed(cfg.train.seed)  # the initial values are overwritten by the load
    tconfig = transformer_config(cfg, tensor=1, pipeline=1, bf16=False, sequence_parallel=False, cpu=True)
    # the embedding has the rows the training layout padded to, whatever layout loads it
    rows = padded_vocab(vocab, cfg.parallel.tensor)
    model = gpt_model(tconfig, cfg, "local", rows, pre_process=True, post_process=True)
    load_weights(model, checkpoint)
    return model.eval()
