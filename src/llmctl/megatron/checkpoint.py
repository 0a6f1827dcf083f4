"""Loading a distributed checkpoint without running code from it (issue 13).

    from llmctl.megatron import checkpoint; checkpoint.verify(Path("runs/pt/checkpoints/iter_0000100"))

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
from typing import Any, BinaryIO

from llmctl.errors import UserError

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
