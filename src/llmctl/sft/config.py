"""Configuration of `llmctl sft` (recipes/sft/*.yaml): data sources and their mixture, training
stages, LoRA, and the TRL trainer's knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.config import RunArgs, check
from llmctl.errors import UserError
from llmctl.hf import DEVICES, DTYPES
from llmctl.sft.mixing import STRATEGIES

OVERLONG = ("truncate", "drop")
SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class SourceConfig:
    path: str = ""
    """JSONL / JSONL.zst / parquet file or directory, or an llmctl artifact (its data/ shards)."""
    weight: float | None = None
    """Mixture weight (mix.strategy=weights); unset = 1."""
    template: str | None = None
    """Template YAML for task rows (several phrasings, the answer column); unset = chat/prompt data."""
    max_examples: int | None = None
    """Cap on the examples drawn from this source (overrides mix.max_examples)."""


@dataclass
class MixConfig:
    strategy: str = "proportional"
    """proportional (every example once, capped), weights (explicit), temperature (N_i ** 1/T)."""
    max_examples: int | None = None
    """Cap per source (examples-proportional mixing with a cap, as FLAN); unset = no cap."""
    temperature: float = 1.0
    """strategy=temperature: 1 = proportional, larger flattens toward uniform."""
    total: int | None = None
    """Examples per stage for weights/temperature; unset = the capped sources' sum."""

    def __post_init__(self) -> None:
        check(self.strategy in STRATEGIES, "mix.strategy", f"must be one of {', '.join(STRATEGIES)}")
        check(self.temperature > 0, "mix.temperature", "must be > 0")
        check(self.max_examples is None or self.max_examples >= 1, "mix.max_examples", "must be >= 1")


@dataclass
class StageConfig:
    name: str = "sft"
    """Stage name (metrics are reported per stage)."""
    sources: list[str] = field(default_factory=list)
    """Names of data.sources trained in this stage; empty = all of them."""
    epochs: float = 1.0
    """Passes over this stage's mixture."""
    replay_fraction: float = 0.0
    """Share of this stage's examples drawn from earlier stages' data, against forgetting."""

    def __post_init__(self) -> None:
        check(self.epochs > 0, "stages.epochs", "must be > 0")
        check(0 <= self.replay_fraction < 1, "stages.replay_fraction", "must be in [0, 1)")


@dataclass
class DataConfig:
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """NAME -> source; positional DATA arguments add sources (NAME=PATH[:WEIGHT] or a path)."""
    mix: MixConfig = field(default_factory=MixConfig)
    """How the sources are mixed into each stage."""
    max_length: int = 512
    """Tokens per example at most (prompt template included)."""
    overlong: str = "truncate"
    """What happens to a longer example: truncate (TRL cuts it) or drop (counted in the manifest)."""
    held_out: int = 32
    """Examples kept out of training to measure the held-out loss before and after."""
    system_prompt: str = ""
    """Self-identification: a system turn added to every conversation that has none."""
    identity: list[dict[str, str]] = field(default_factory=list)
    """Self-identification examples ({prompt, answer}) added to every stage."""
    pretrain_text: str | None = None
    """Pre-training documents (a clean/dedup artifact or JSONL with `text`) mixed in as a
    regulariser: each enters as one assistant turn, so every token of it carries a label."""
    pretrain_ratio: float = 0.0
    """pretrain_text documents per instruction example in each stage (e.g. 0.1)."""

    def __post_init__(self) -> None:
        check(self.max_length >= 16, "data.max_length", "must be >= 16")
        check(self.overlong in OVERLONG, "data.overlong", f"must be one of {', '.join(OVERLONG)}")
        check(self.held_out >= 1, "data.held_out", "must be >= 1 (the before/after loss needs it)")
        check(self.pretrain_ratio >= 0, "data.pretrain_ratio", "must be >= 0")


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train a LoRA adapter (peft) instead of every weight (--lora)."""
    r: int = 8
    """Rank of the update matrices."""
    alpha: int = 16
    """Scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names to adapt (their last name part, e.g. q_proj); each must exist in the model."""

    def __post_init__(self) -> None:
        check(self.r >= 1, "lora.r", "must be >= 1")
        check(0 <= self.dropout < 1, "lora.dropout", "must be in [0, 1)")
        check(bool(self.target_modules), "lora.target_modules", "must name at least one module")


@dataclass
class TrainConfig:
    lr: float = 2e-5
    """Peak learning rate."""
    schedule: str = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming up."""
    batch_size: int = 8
    """Examples per device per step."""
    grad_accum: int = 1
    """Gradient accumulation steps (effective batch = batch_size * grad_accum * ranks)."""
    max_steps: int | None = None
    """Stop each stage after this many optimizer steps (overrides its epochs)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    packing: bool = False
    """Pack several examples into each max_length row (TRL's best-fit packing)."""
    assistant_only_loss: bool = True
    """Loss on the assistant's tokens only (system, user and template tokens carry no labels)."""
    save_steps: int = 50
    """Checkpoint every N steps (for --resume)."""
    logging_steps: int = 5
    """Record the train loss every N steps (the loss curve)."""
    seed: int = 1234
    """Seed of the data draw, the held-out split, the template phrasings and the trainer."""
    dtype: str = "auto"
    """Training dtype: float32, bfloat16 (mixed precision), or auto (bfloat16 on a GPU, float32 on CPU)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% more compute)."""
    fsdp: bool = False
    """Fully sharded data parallelism across the ranks (transformers' FSDP, GPUs only), configured
    by fsdp_config; off = plain DDP (each rank holds the whole model)."""
    fsdp_config: dict[str, Any] = field(default_factory=dict)
    """transformers' `fsdp_config`, e.g. {version: 2, reshard_after_forward: true (ZeRO-3's layout),
    transformer_layer_cls_to_wrap: [LlamaDecoderLayer], activation_checkpointing: true}."""

    def __post_init__(self) -> None:
        check(self.lr > 0, "train.lr", "must be > 0")
        check(self.schedule in SCHEDULES, "train.schedule", f"must be one of {', '.join(SCHEDULES)}")
        check(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
        check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        check(self.max_steps is None or self.max_steps >= 1, "train.max_steps", "must be >= 1")
        check(self.save_steps >= 1, "train.save_steps", "must be >= 1")
        check(self.dtype in DTYPES, "train.dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "train.device", f"must be one of {', '.join(DEVICES)}")


@dataclass
class SftConfig:
    model: str = ""
    """Base model: a Hugging Face causal-LM directory or an llmctl artifact holding one (hf/)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Sources, their mixture, lengths, held-out set, self-identification."""
    stages: list[StageConfig] = field(default_factory=list)
    """Multi-stage tuning, in order (e.g. task data, then chat); empty = one stage of every source."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Parameter-efficient tuning (survey 5.3)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The trainer's knobs (TRL SFTConfig)."""
    chat_template: str | None = None
    """A Jinja chat template with {% generation %} markers to use instead of the model's own."""
    nproc: int = 1
    """Data-parallel ranks on this node, started through torchrun (--nproc); under torchrun or srun,
    the launcher's process count."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        check(len(names) == len(set(names)), "stages", "stage names must be unique")
        check(self.nproc >= 1, "nproc", "must be >= 1")


CLI_KEYS = {"lora": "lora.enabled", "max_steps": "train.max_steps", "nproc": "nproc"}


def parse_data_args(args: list[str]) -> dict[str, SourceConfig]:
    """Positional DATA: `NAME=PATH[:WEIGHT]` or a plain PATH (named after the file, e.g. chat for
    chat.jsonl.zst). A name given twice is exit 2."""
    out: dict[str, SourceConfig] = {}
    for arg in args:
        name, sep, rest = arg.partition("=")
        if not sep or "/" in name or not name:
            name, rest = Path(arg).name.split(".", 1)[0] or "data", arg
        path, weight = rest, None
        head, colon, tail = rest.rpartition(":")
        if colon and head:
            try:
                weight = float(tail)
            except ValueError:
                pass
            else:
                path = head
        if name in out:
            raise UserError(f"DATA {arg}: a source named '{name}' is given twice; name them NAME=PATH")
        if weight is not None and weight < 0:
            raise UserError(f"DATA {arg}: the weight must be >= 0")
        out[name] = SourceConfig(path=path, weight=weight)
    return out


def add_data_args(cfg: SftConfig, args: list[str]) -> None:
    """Positional DATA into cfg.data.sources: a name the recipe (or --set) already has keeps its
    other keys (template, max_examples) and takes the path (and weight, when given)."""
    for name, src in parse_data_args(args).items():
        have = cfg.data.sources.get(name)
        if have is None:
            cfg.data.sources[name] = src
            continue
        have.path = src.path
        if src.weight is not None:
            have.weight = src.weight
