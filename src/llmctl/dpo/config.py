"""Configuration of `llmctl dpo` (recipes/dpo/*.yaml): the preference data (read as `llmctl rm`
reads it: the same sources, pair building and held-out split keys), the reference model, LoRA,
and TRL DPOConfig's knobs (loss, beta, the supervised term on chosen responses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmctl.config import RunArgs, check
from llmctl.hf import DEVICES, DTYPES
from llmctl.rm.config import DataConfig, parse_prefs_args
from llmctl.sft.config import LoraConfig

SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")
LOSSES = ("sigmoid", "ipo")


@dataclass
class ReferenceConfig:
    model: str = ""
    """The reference policy pi_ref: empty = the initial policy (MODEL itself; with LoRA, the
    adapter-disabled base, no second copy); else a Hugging Face directory or llmctl artifact."""
    precompute: bool = False
    """Compute the reference log-probs of every pair once before training (TRL's
    precompute_ref_log_probs): the reference is not kept in memory while training."""


@dataclass
class TrainConfig:
    loss: str = "sigmoid"
    """sigmoid (DPO: -log sigmoid(beta * margin)) or ipo (IPO: (margin - 1/(2 beta))^2)."""
    beta: float = 0.1
    """Strength of the tie to the reference (DPO's beta; IPO's regularisation parameter)."""
    sft_weight: float = 0.0
    """Weight of a supervised NLL term on the chosen responses added to the preference loss (TRL's
    loss_type [LOSS, sft] with loss_weights [1, w]; survey 5.2.4); 0 = off."""
    lr: float = 5e-7
    """Peak learning rate."""
    schedule: str = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming up."""
    batch_size: int = 8
    """Pairs per device per step (each is two sequences, four with the reference forward)."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    epochs: float = 1.0
    """Passes over the training pairs."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (TRL's DPOConfig turns it on by default; llmctl
    does not: it costs time and a tiny model does not need it)."""
    save_steps: int = 50
    """Checkpoint every N steps (for --resume)."""
    logging_steps: int = 5
    """Record the train loss every N steps (the loss curve)."""
    eval_batch_size: int = 16
    """Pairs per forward pass in the held-out measurements."""
    seed: int = 1234
    """Seed of the held-out split, the samples and the trainer."""
    dtype: str = "auto"
    """Training dtype: float32, bfloat16 (mixed precision), or auto (bfloat16 on a GPU, float32 on CPU)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""

    def __post_init__(self) -> None:
        check(self.loss in LOSSES, "train.loss", f"must be one of {', '.join(LOSSES)}")
        check(self.beta > 0, "train.beta", "must be > 0")
        check(self.sft_weight >= 0, "train.sft_weight", "must be >= 0")
        check(self.lr > 0, "train.lr", "must be > 0")
        check(self.schedule in SCHEDULES, "train.schedule", f"must be one of {', '.join(SCHEDULES)}")
        check(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
        check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        check(self.epochs > 0, "train.epochs", "must be > 0")
        check(self.max_steps is None or self.max_steps >= 1, "train.max_steps", "must be >= 1")
        check(self.save_steps >= 1, "train.save_steps", "must be >= 1")
        check(self.logging_steps >= 1, "train.logging_steps", "must be >= 1")
        check(self.eval_batch_size >= 1, "train.eval_batch_size", "must be >= 1")
        check(self.dtype in DTYPES, "train.dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "train.device", f"must be one of {', '.join(DEVICES)}")


@dataclass
class DpoConfig:
    model: str = ""
    """The policy to align: a Hugging Face causal-LM directory or an llmctl artifact with hf/ (sft)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Preference sources, pair building, lengths, held-out prompts (the keys of `llmctl rm`)."""
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    """The reference policy of the implicit reward beta * log(pi / pi_ref)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Parameter-efficient tuning (peft, CAUSAL_LM); the artifact's hf/ is then merged."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The trainer's knobs (TRL DPOConfig)."""
    chat_template: str | None = None
    """A Jinja chat template to render prompts and responses with instead of the model's own."""
    nproc: int = 1
    """Data-parallel ranks on this node, started through torchrun (--nproc); under torchrun or srun,
    the launcher's process count."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.nproc >= 1, "nproc", "must be >= 1")


CLI_KEYS = {"lora": "lora.enabled", "max_steps": "train.max_steps", "nproc": "nproc"}


def add_prefs_args(cfg: DpoConfig, args: list[str]) -> None:
    """Positional PREFS into cfg.data.sources (as `llmctl rm`: NAME=PATH or PATH); a name the
    recipe already has keeps its other keys."""
    for name, src in parse_prefs_args(args).items():
        have = cfg.data.sources.get(name)
        if have is None:
            cfg.data.sources[name] = src
        else:
            have.path = src.path


def resolve(path: str | None, cfg: DpoConfig) -> Path:
    """A recipe's relative path is relative to the recipe; a flag's to the working directory."""
    p = Path(path or "")
    if not p.is_absolute() and cfg.run.recipe_dir is not None and (cfg.run.recipe_dir / p).exists():
        return cfg.run.recipe_dir / p
    return p
