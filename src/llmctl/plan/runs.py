"""What `llmctl plan` reads and writes: pretrain recipes, finished pretrain artifacts, new recipes.

    python -c "from llmctl.plan import runs; print(runs.load_recipe('recipes/pretrain/tiny.yaml'))"

A recipe is read through the pretrain stage's own config loader (the recipe format is the
contract, so a recipe `plan` accepts is one `pretrain` accepts); an artifact through its
manifest.json (metrics.parameters, metrics.valid_loss, metrics.tokens_per_s, the resolved config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmctl.errors import UserError
from llmctl.plan.memory import Layout, Model
from llmctl.pretrain.config import PretrainConfig  # the recipe schema: dataclasses only, cheap


def load_recipe(path: Path, overrides: list[str] | None = None) -> PretrainConfig:
    from llmctl import config as cfgmod

    if not Path(path).is_file():
        raise UserError(f"{path}: no such recipe file")
    return cfgmod.load(PretrainConfig, path, overrides or [])


def model_of(cfg: PretrainConfig, vocab: int) -> Model:
    m = cfg.model
    kv = m.num_query_groups or m.num_attention_heads
    return Model(
        m.num_layers,
        m.hidden_size,
        m.num_attention_heads,
        m.seq_length,
        vocab,
        m.ffn(),
        kv,
        tied=m.tie_embeddings,
        arch="llama",
    )


def layout_of(
    cfg: PretrainConfig,
    gpus: int,
    tp: int,
    pp: int,
    micro_batch: int,
    sequence_parallel: bool,
    distributed_optimizer: bool,
    recompute: str = "none",
    precision: str = "bf16",
) -> Layout:
    """The layout of `gpus` GPUs at TP x PP (data parallel over the rest) for the recipe's batch."""
    if tp < 1 or pp < 1 or gpus < 1 or gpus % (tp * pp):
        raise UserError(f"--gpus {gpus}: must be a positive multiple of TP x PP = {tp} x {pp}")
    return Layout(
        tp,
        pp,
        gpus // (tp * pp),
        micro_batch,
        cfg.train.global_batch_size,
        sequence_parallel,
        recompute,
        distributed_optimizer,
        precision,
    )


def recipe_tokens(cfg: PretrainConfig) -> int:
    """Tokens a recipe trains on: steps x global batch x sequence length (no batch ramp-up)."""
    return cfg.train.steps * cfg.train.global_batch_size * cfg.model.seq_length


@dataclass(frozen=True)
class Run:
    """One finished pretrain run, as `plan fit` and `plan time --measured` use it."""

    path: Path
    params: int
    tokens: int
    loss: float | None
    tokens_per_s: float
    devices: int
    flops_per_token: float


def read_run(directory: Path) -> Run:
    from llmctl import config as cfgmod
    from llmctl.artifacts import Manifest

    m = Manifest.read(directory)
    if m.stage != "pretrain":
        raise UserError(f"{directory}: a {m.stage} artifact; plan reads pretrain artifacts")
    try:
        cfg = cfgmod.from_dict(PretrainConfig, m.config)
        params = int(m.metrics["parameters"])
        tps = float(m.metrics["tokens_per_s"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{directory}/manifest.json: no usable pretrain metrics ({e})") from None
    steps = int(m.metrics.get("steps") or cfg.train.steps)
    tokens = steps * cfg.train.global_batch_size * cfg.model.seq_length
    mc = cfg.model
    fpt = 6 * params + 12 * mc.num_layers * mc.hidden_size * mc.seq_length  # as pretrain's MFU
    loss = m.metrics.get("valid_loss")
    return Run(Path(directory), params, tokens, None if loss is None else float(loss), tps, cfg.nproc, fpt)


def shape_for(params: float, vocab: int, seq: int) -> dict[str, int]:
    """A LLaMA-style shape of about `params` parameters: heads of 64 (128 from 2048 wide), widths in
    steps of 64, 256 from 1024 and 1024 from 4096 (so that wide models have a head count that TP 8
    divides), depth near width/100 (the aspect ratio of LLaMA and Chinchilla's Table A9)."""
    best: tuple[float, dict[str, int]] | None = None
    widths = [*range(64, 1024, 64), *range(1024, 4096, 256), *range(4096, 65536 + 1, 1024)]
    for h in widths:
        head = 128 if h >= 2048 else 64
        probe = Model(1, h, h // head, seq, vocab, _ffn(h), h // head)
        per_layer = probe.layer_params(1)
        layers = round((params - vocab * h) / per_layer)
        if layers < 1:
            continue
        n = Model(layers, h, h // head, seq, vocab, _ffn(h), h // head).params()
        score = abs(math.log(n / params)) * 20 + abs(math.log(h / layers / 100))
        if best is None or score < best[0]:
            best = (score, {"num_layers": layers, "hidden_size": h, "num_attention_heads": h // head})
    if best is None:
        raise UserError(f"no model shape has about {params:.3g} parameters with a {vocab}-token vocabulary")
    return best[1]


def _ffn(h: int) -> int:
    """The SwiGLU width pretrain uses when ffn_hidden_size is unset."""
    from llmctl.pretrain.config import ModelConfig

    return ModelConfig(hidden_size=h, num_attention_heads=1).ffn()


def write_recipe(out: Path, tree: dict[str, Any], command: str, why: str) -> PretrainConfig:
    """Write `tree` as a pretrain recipe (after checking it loads as one) and return its config."""
    from llmctl import config as cfgmod

    try:
        cfg = cfgmod.from_dict(PretrainConfig, tree)
    except UserError as e:
        raise UserError(f"--write-recipe {out}: the answer is not a valid pretrain recipe ({e})") from None
    head = f"# llmctl pretrain TOKENIZED --out runs/pretrain --config {out}\n#\n# {why}\n"
    head += f"# written by: {command}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + yaml.safe_dump(tree, sort_keys=False))
    return cfg


def budget_recipe(params: float, tokens: float, vocab: int, seq: int, global_batch: int) -> dict[str, Any]:
    """A recipe tree for a model of about `params` parameters trained on about `tokens` tokens."""
    shape = shape_for(params, vocab, seq)
    steps = max(1, math.ceil(tokens / (global_batch * seq)))
    warmup = min(2000, steps // 10)
    return {
        "model": {**shape, "seq_length": seq},
        "optim": {"warmup_steps": warmup},
        "train": {"steps": steps, "micro_batch_size": 1, "global_batch_size": global_batch},
    }


def layout_recipe(cfg: PretrainConfig, layout: Layout, gpus: int) -> dict[str, Any]:
    """The recipe `cfg` with its parallel layout (and micro-batch) replaced by `layout`."""
    from llmctl import config as cfgmod

    tree = cfgmod.to_dict(cfg)
    tree["parallel"] = {
        "tensor": layout.tp,
        "pipeline": layout.pp,
        "sequence_parallel": layout.sequence_parallel,
        "distributed_optimizer": layout.distributed_optimizer,
    }
    tree["train"]["micro_batch_size"] = layout.micro_batch
    tree["nproc"] = gpus
    return tree
