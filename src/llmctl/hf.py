"""Where and in what precision a Hugging Face model runs: `--device` and `--dtype` of the stages
that load one (eval, clean's perplexity scorer).

    llmctl eval runs/pt --out runs/ev --tasks capitals --device auto --dtype auto

`auto` device: CUDA when present, else the CPU. `auto` dtype: bfloat16 on a GPU that supports it
(float16 on one that does not), float32 on the CPU. torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmctl.errors import UserError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(name: str, *, key: str = "device") -> str:
    """ "cpu" or "cuda"; asking for cuda where there is none is a user error naming `key`."""
    import torch

    if name not in DEVICES:
        raise UserError(f"{key}={name}: one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}=cuda: no CUDA device here; use cpu or auto")
    return name


def resolve_dtype(name: str, device: str, *, key: str = "dtype") -> torch.dtype:
    """The torch dtype for `name` on `device` (a resolved device: "cpu" or "cuda")."""
    import torch

    if name not in DTYPES:
        raise UserError(f"{key}={name}: one of {', '.join(DTYPES)}")
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> "bfloat16" (what manifests record)."""
    return str(dtype).removeprefix("torch.")
