"""Configuration of `llmctl rm` (recipes/rm/*.yaml) and `llmctl score`: preference sources, how
rankings and ratings become pairs, the held-out split, LoRA, and the RewardTrainer's knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmctl.config import RunArgs, check
from llmctl.errors import UserError
from llmctl.hf import DEVICES, DTYPES

SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class SourceConfig:
    path: str = ""
    """JSONL / JSONL.zst / parquet file or directory of preference records (pairs, rankings, ratings)."""
    max_pairs: int | None = None
    """Cap on the pairs drawn from this source (a seeded sample); unset = all."""


@dataclass
class DataConfig:
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """NAME -> source; positional PREFS arguments add sources (NAME=PATH or a path)."""
    max_length: int = 512
    """Tokens per rendered (prompt, response) at most; a longer pair is dropped and counted."""
    held_out: int = 16
    """Prompts kept out of training (with all their pairs) to measure pairwise accuracy before/after."""
    min_score_gap: float = 1.0
    """Ratings: two responses to one prompt make a pair when their scores differ by at least this."""
    max_pairs_per_prompt: int | None = None
    """Rankings and ratings: at most this many pairs per prompt (a seeded sample); unset = all C(K,2)."""
    system_prompt: str = ""
    """A system turn added to every prompt that has none (as the policy will be prompted)."""

    def __post_init__(self) -> None:
        check(self.max_length >= 16, "data.max_length", "must be >= 16")
        check(self.held_out >= 1, "data.held_out", "must be >= 1 (the before/after accuracy needs it)")
        check(self.min_score_gap > 0, "data.min_score_gap", "must be > 0 (equal scores are a tie)")
        check(
            self.max_pairs_per_prompt is None or self.max_pairs_per_prompt >= 1,
            "data.max_pairs_per_prompt",
            "must be >= 1",
        )


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train a LoRA adapter (peft, task SEQ_CLS) plus the score head instead of every weight (--lora)."""
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
    lr: float = 1e-5
    """Peak learning rate."""
    schedule: str = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming up."""
    batch_size: int = 8
    """Pairs per device per step (each is two sequences)."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    epochs: float = 1.0
    """Passes over the training pairs (InstructGPT trains its RM one epoch: more over-fits)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (TRL's RewardConfig turns it on by default; llmctl
    does not: it costs time, about a third of each step, and a model that fits does not need it)."""
    center_rewards_coefficient: float | None = None
    """TRL's reward centering: adds coef * mean((r_chosen + r_rejected)^2), keeping rewards near 0."""
    lm_weight: float = 0.0
    """Weight of the language-modelling loss on the chosen responses added to the ranking loss
    (survey 5.2.3: a guard against reward-model over-fitting); 0 = off."""
    use_margin: bool = True
    """Use a source's `margin` column in the loss (-log sigmoid(r_c - r_r - margin)) when present."""
    save_steps: int = 50
    """Checkpoint every N steps (for --resume)."""
    logging_steps: int = 5
    """Record the train loss every N steps (the loss curve)."""
    eval_batch_size: int = 16
    """Sequences per forward pass when scoring (held-out accuracy, reward statistics)."""
    stats_max_pairs: int = 2000
    """Training pairs scored after training for reward.json's mean and std (a seeded sample)."""
    seed: int = 1234
    """Seed of the held-out split, the samples and the trainer."""
    dtype: str = "auto"
    """Training dtype: float32, bfloat16 (mixed precision), or auto (bfloat16 on a GPU, float32 on CPU)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""

    def __post_init__(self) -> None:
        check(self.lr > 0, "train.lr", "must be > 0")
        check(self.schedule in SCHEDULES, "train.schedule", f"must be one of {', '.join(SCHEDULES)}")
        check(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
        check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        check(self.epochs > 0, "train.epochs", "must be > 0")
        check(self.max_steps is None or self.max_steps >= 1, "train.max_steps", "must be >= 1")
        check(self.lm_weight >= 0, "train.lm_weight", "must be >= 0")
        check(self.save_steps >= 1, "train.save_steps", "must be >= 1")
        check(self.eval_batch_size >= 1, "train.eval_batch_size", "must be >= 1")
        check(self.stats_max_pairs >= 1, "train.stats_max_pairs", "must be >= 1")
        check(self.dtype in DTYPES, "train.dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "train.device", f"must be one of {', '.join(DEVICES)}")


@dataclass
class CriterionConfig:
    path: str = ""
    """This criterion's preference data (as a PREFS source); --criterion NAME=PATH sets it."""
    weight: float = 1.0
    """Its weight in the combined score: sum over criteria of weight * (reward - mean) / std."""


@dataclass
class RmConfig:
    model: str = ""
    """Base model: a Hugging Face causal-LM directory or an llmctl artifact holding one (hf/)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Preference sources, pair building, lengths, held-out prompts."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Parameter-efficient tuning: the adapter and the (always trained) score head."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The trainer's knobs (TRL RewardConfig) and the LM regulariser."""
    chat_template: str | None = None
    """A Jinja chat template to render prompts and responses with instead of the model's own."""
    criteria: dict[str, CriterionConfig] = field(default_factory=dict)
    """Several criteria (survey 5.2.1: helpful, honest, harmless): one reward model each, under
    criteria/NAME/, and a combined scorer (reward.json) weighting their normalised rewards."""
    nproc: int = 1
    """Data-parallel ranks on this node, started through torchrun (--nproc); under torchrun or srun,
    the launcher's process count."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.nproc >= 1, "nproc", "must be >= 1")


@dataclass
class ScoreConfig:
    model: str = ""
    """A reward-model artifact (llmctl rm): hf/ and reward.json."""
    batch_size: int = 16
    """Sequences per forward pass."""
    normalise: bool = False
    """Also write `score_norm`: (score - mean) / std with the training set's statistics."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""
    dtype: str = "float32"
    """float32, bfloat16, float16 or auto."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs (the DATA files), out, force."""

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}")


CLI_KEYS = {"lora": "lora.enabled", "max_steps": "train.max_steps", "nproc": "nproc"}
SCORE_CLI_KEYS = {"batch_size": "batch_size", "device": "device", "dtype": "dtype", "normalise": "normalise"}


def parse_prefs_args(args: list[str]) -> dict[str, SourceConfig]:
    """Positional PREFS: `NAME=PATH` or a plain PATH (named after the file: pairs for pairs.jsonl).
    A name given twice is exit 2."""
    out: dict[str, SourceConfig] = {}
    for arg in args:
        name, sep, path = arg.partition("=")
        if not sep or "/" in name or not name:
            name, path = Path(arg).name.split(".", 1)[0] or "prefs", arg
        if name in out:
            raise UserError(f"PREFS {arg}: a source named '{name}' is given twice; name them NAME=PATH")
        out[name] = SourceConfig(path=path)
    return out


def add_criterion_args(cfg: RmConfig, args: list[str]) -> None:
    """--criterion NAME=PATH (repeatable) into cfg.criteria; a recipe's weight for NAME is kept."""
    for arg in args:
        name, sep, path = arg.partition("=")
        if not sep or not name or not path or "/" in name:
            raise UserError(f"--criterion {arg}: expected NAME=PATH, e.g. --criterion helpful=helpful.jsonl")
        if name in {a.partition("=")[0] for a in args[: args.index(arg)]}:
            raise UserError(f"--criterion {arg}: criterion '{name}' is given twice")
        cfg.criteria.setdefault(name, CriterionConfig()).path = path


def add_prefs_args(cfg: RmConfig, args: list[str]) -> None:
    """Positional PREFS into cfg.data.sources: a name the recipe already has keeps its other keys."""
    for name, src in parse_prefs_args(args).items():
        have = cfg.data.sources.get(name)
        if have is None:
            cfg.data.sources[name] = src
        else:
            have.path = src.path
