"""The Hugging Face boundary: model directories read locally, never their code; device and dtype.

    from llmctl import hf; hf.refuse_custom_code(Path("runs/pt/hf"), "eval")
    llmctl eval runs/pt --out runs/ev --tasks capitals --device auto --dtype auto

A directory whose config asks for custom code (`auto_map`, or a `model_type` transformers does
not know) would make transformers ask "run the custom code? [y/N]" on a terminal, and `y` runs
Python shipped with the model. llmctl passes `trust_remote_code=False` to every from_pretrained
and, before that, refuses such a directory with a user error saying why (no prompt, ever).

`--device` and `--dtype` of the stages that load a model (eval, clean's perplexity scorer): `auto`
device is CUDA when present, else the CPU; `auto` dtype is bfloat16 on a GPU that supports it
(float16 on one that does not), float32 on the CPU. torch is imported inside the functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmctl.errors import UserError

if TYPE_CHECKING:
    import torch


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def refuse_custom_code(directory: Path, what: str) -> None:
    """UserError when `directory` needs custom code: a config.json whose model_type transformers does
    not know (with or without an `auto_map`), or a tokenizer_config.json whose `auto_map` names a
    tokenizer class transformers lacks. An `auto_map` beside a known model_type is harmless: with
    trust_remote_code=False transformers loads its own class and ignores the custom one."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    why = "llmctl never runs code shipped with a model (trust_remote_code=False)"
    config = _read_json(directory / "config.json") or {}
    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES and ("auto_map" in config or model_type is not None):
        custom = (
            f" and asks for custom code (auto_map: {_names(config['auto_map'])})"
            if "auto_map" in config
            else ""
        )
        raise UserError(
            f"{what}: {directory / 'config.json'} has model_type {model_type!r}, which transformers does "
            f"not know{custom}; {why}: use a model transformers supports natively"
        )
    tok = _read_json(directory / "tokenizer_config.json") or {}
    if "auto_map" in tok and not hasattr(transformers, str(tok.get("tokenizer_class"))):
        raise UserError(
            f"{what}: {directory / 'tokenizer_config.json'} asks for a custom tokenizer "
            f"(auto_map: {_names(tok['auto_map'])}); {why}: use a tokenizer transformers supports natively"
        )


def _names(auto_map: Any) -> str:
    return ", ".join(sorted({str(v) for v in _flatten(auto_map)}))[:200]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    return [value]


def honour_umask(directory: Path) -> None:
    """Give the files transformers wrote the mode the user's umask asks for: save_pretrained writes
    model.safetensors 0600 (through a private temporary file), which others in a shared group
    could not read, unlike every other file of the artifact."""
    mask = os.umask(0)
    os.umask(mask)  # reading the umask means setting it; put it straight back
    for f in directory.iterdir():
        if f.is_file() and not f.is_symlink():
            f.chmod(0o666 & ~mask)


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
