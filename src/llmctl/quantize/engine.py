"""The one gptqmodel boundary of llmctl: environment, lazy import, the library's output kept out of
the user's terminal, and the quantize + save call itself.

    from llmctl.quantize import engine
    with engine.library(staging / "logs" / "gptqmodel.log", cwd=staging):
        seconds = engine.quantize(model_dir, staging / "hf", cfg, "gptq", samples)

gptqmodel is imported here only, inside the functions: importing it takes 10-22 s, sets HF_HOME,
and writes ./logs into the current directory, so it runs in a directory of the stage's choosing.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmctl.errors import UserError
from llmctl.quantize.config import QuantizeConfig

# Lines the libraries print on every load that say nothing to a user: torchao 0.18's optional CUDA
# kernels on a CPU machine, torch's pytree deprecation for torchao's Enums, gptqmodel's banner/log.
NOISE = re.compile(
    r"Failed to load .*torchao|_pytree\.py.*register_constant|is an Enum subclass|^\s*$|"
    r"^(INFO|DEBUG)\s|░|█|GIL is enabled|Calibration dataset size|average length of input_ids|"
    r"Disk subsystem write throughput"
)


def prepare_env(cfg: QuantizeConfig) -> None:
    """What gptqmodel reads at import: a CPU worker pool of >= 2 (with fewer, its model loader asks a
    parent pool of 1 for 2 workers and fails), no hub, and whether to compile its packing extension."""
    from llmctl import hf

    hf.offline()
    try:
        workers = int(os.environ.get("GPTQMODEL_CPU_WORKERS", "0"))
    except ValueError:
        workers = 0
    if workers < 2:
        os.environ["GPTQMODEL_CPU_WORKERS"] = "2"
    # the C++ packer compiles on first use (~2.5 min, cached in ~/.cache/gptqmodel); the torch path
    # that gptqmodel falls back to packs the same bytes with no compiler
    os.environ["GPTQMODEL_DISABLE_PACK_EXT"] = "0" if cfg.pack_extension else "1"
    os.environ.setdefault("HF_HOME", str(Path.home() / ".cache" / "huggingface"))


@contextmanager
def library(log: Path, cwd: Path) -> Iterator[None]:
    """Run library code in directory `cwd` (gptqmodel writes ./logs there) with stdout/stderr
    (file descriptors 1 and 2, so C extensions and logging handlers included)
    appended to `log`. On an exception, the log's last meaningful lines go to stderr."""
    log.parent.mkdir(parents=True, exist_ok=True)
    back = Path.cwd()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            os.chdir(cwd)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.chdir(back)
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    except BaseException:
        tail = meaningful(log.read_text(errors="replace"))[-15:]
        if tail:
            print("\n".join(["gptqmodel's last messages:", *tail]), file=sys.stderr)
        raise
    finally:
        os.close(saved[0])
        os.close(saved[1])


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run code that imports transformers' optional backends (torchao prints on import) with
    stderr held in a temporary file; its lines, less the noise, are written out afterwards."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            kept = meaningful(f.read().decode(errors="replace"))
            if kept:
                print("\n".join(kept), file=sys.stderr)


def meaningful(text: str) -> list[str]:
    """The lines of a library log without the noise (NOISE)."""
    return [ln for ln in text.splitlines() if not NOISE.search(ln)]


def import_gptqmodel() -> Any:
    """gptqmodel, imported (first call: 10-22 s)."""
    import gptqmodel

    return gptqmodel


def quant_config(cfg: QuantizeConfig, method: str) -> Any:
    """gptqmodel's config for `method` (gptq or rtn) at cfg's bits and groups. Offloading to disk is
    off: it writes a temp path into the checkpoint's config.json and a CPU run keeps all in memory."""
    g = import_gptqmodel()
    common: dict[str, Any] = {"bits": cfg.bits, "group_size": cfg.group_size, "sym": cfg.sym}
    common["offload_to_disk"] = False
    if cfg.keep_fp:  # gptqmodel's negative dynamic rules: these modules are not quantized
        common["dynamic"] = {f"-:.*(?:{r})": {} for r in cfg.keep_fp}
    if method == "gptq":
        return g.GPTQConfig(**common, desc_act=cfg.desc_act, damp_percent=cfg.damp)
    if method == "rtn":  # gptqmodel's weight-only RTN writes the same GPTQ format, so one loader reads both
        return g.RTNConfig(**common)
    raise UserError(f"method: {method} is not a gptqmodel method here")


def quantize(model_dir: Path, out: Path, cfg: QuantizeConfig, method: str, samples: list[list[int]]) -> float:
    """Quantize `model_dir` with `method` on the calibration windows and save the GPTQ checkpoint
    to `out`; returns the seconds the quantization itself took (load and save excluded)."""
    import torch

    g = import_gptqmodel()
    model = g.GPTQModel.load(str(model_dir), quant_config(cfg, method), device="cpu", dtype=torch.float32)
    calib = [{"input_ids": s, "attention_mask": [1] * len(s)} for s in samples] if method == "gptq" else None
    t0 = time.perf_counter()
    model.quantize(calib, batch_size=cfg.batch_size, calibration_data_min_length=1)
    seconds = time.perf_counter() - t0
    save(model, out)
    return seconds


def mark_kept_layers(hf_dir: Path, quantized: list[str]) -> None:
    """Write modules_in_block_to_quantize (the names inside a block, e.g. self_attn.q_proj) into
    config.json's quantization_config: transformers' GPTQ loader (optimum) otherwise converts every
    linear layer of every block, including those gptqmodel left in full precision."""
    import json

    path = hf_dir / "config.json"
    config = json.loads(path.read_text())
    inside = sorted({re.sub(r"^.*?\.layers\.\d+\.", "", n) for n in quantized})
    config["quantization_config"]["modules_in_block_to_quantize"] = [inside]
    path.write_text(json.dumps(config, indent=2) + "\n")


def save(model: Any, out: Path) -> None:
    """The quantized model as a GPTQ checkpoint (config.json's quantization_config, safetensors)."""
    model.save(str(out))


def load_quantized(hf_dir: Path) -> Any:
    """The GPTQ checkpoint loaded back through transformers (gptqmodel's CPU kernel under it)."""
    from llmctl import hf

    import_gptqmodel()
    import torch

    return hf.load_causal_lm(hf_dir, what=f"quantized model {hf_dir}", dtype=torch.float32, device="cpu")


def load_with_gptqmodel(hf_dir: Path) -> Any:
    """The GPTQ checkpoint loaded back through gptqmodel's own loader (its torch module), in
    bfloat16: its 8-bit CPU kernel (TorchLinear) refuses float32."""
    import torch

    g = import_gptqmodel()
    return g.GPTQModel.load(str(hf_dir), device="cpu", dtype=torch.bfloat16).model.eval()
