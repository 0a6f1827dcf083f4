"""Configuration of `llmctl pretrain` (recipes/pretrain/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.config import RunArgs, check

MAX_SEQ_LENGTH = 1 << 20
"""Longest `model.seq_length` accepted (1,048,576 tokens): longer than any open model pre-trains
at, and the local layer spec materialises a seq x seq attention mask, which at 2^20 is already a
terabyte; a typo such as 100000000 must fail here, not as a petabyte allocation in every rank."""


@dataclass
class ModelConfig:
    num_layers: int = 2
    """Transformer layers."""
    hidden_size: int = 64
    """Model width."""
    num_attention_heads: int = 4
    """Attention heads."""
    num_query_groups: int | None = None
    """Grouped-query attention: key/value heads (unset = multi-head attention)."""
    ffn_hidden_size: int | None = None
    """SwiGLU inner width (unset = 8/3 x hidden, rounded up to a multiple of 64... or of 8 when tiny)."""
    seq_length: int = 128
    """Training sequence length (tokens)."""
    tie_embeddings: bool = True
    """Share the input embedding and output projection."""
    rope_base: float = 10000.0
    """Rotary embedding base."""
    norm_epsilon: float = 1e-5
    """RMSNorm epsilon."""
    init_std: float = 0.02
    """Standard deviation of the weight initialisation."""
    layer_spec: str = "auto"
    """megatron-core layer implementation: transformer_engine, local, or auto (TransformerEngine
    when it is installed and a GPU is present, else local)."""

    def ffn(self) -> int:
        if self.ffn_hidden_size is not None:
            return self.ffn_hidden_size
        raw = int(8 * self.hidden_size / 3)
        mult = 64 if self.hidden_size >= 512 else 8
        return (raw + mult - 1) // mult * mult

    def __post_init__(self) -> None:
        specs = ("auto", "local", "transformer_engine")
        check(self.layer_spec in specs, "model.layer_spec", f"must be one of {', '.join(specs)}")
        for key in ("num_layers", "hidden_size", "num_attention_heads", "seq_length"):
            check(getattr(self, key) >= 1, f"model.{key}", "must be >= 1")
        check(
            self.hidden_size % self.num_attention_heads == 0,
            "model.hidden_size",
            f"must be divisible by model.num_attention_heads ({self.num_attention_heads})",
        )
        head_dim = self.hidden_size // self.num_attention_heads
        odd = f"gives an odd head size {head_dim}; RoPE needs an even one"
        check(head_dim % 2 == 0, "model.hidden_size", odd)
        if self.num_query_groups is not None:
            check(self.num_query_groups >= 1, "model.num_query_groups", "must be >= 1 (or unset)")
            check(
                self.num_attention_heads % self.num_query_groups == 0,
                "model.num_query_groups",
                f"must divide model.num_attention_heads ({self.num_attention_heads})",
            )
        if self.ffn_hidden_size is not None:
            check(self.ffn_hidden_size >= 1, "model.ffn_hidden_size", "must be >= 1 (or unset)")
        check(
            self.seq_length <= MAX_SEQ_LENGTH,
            "model.seq_length",
            f"must be <= {MAX_SEQ_LENGTH:,} tokens (got {self.seq_length:,})",
        )
        check(self.norm_epsilon > 0, "model.norm_epsilon", "must be > 0")
        check(self.rope_base > 0, "model.rope_base", "must be > 0")
        check(self.init_std > 0, "model.init_std", "must be > 0")


@dataclass
class ParallelConfig:
    tensor: int = 1
    """Tensor-parallel size (TP)."""
    pipeline: int = 1
    """Pipeline-parallel size (PP, 1F1B schedule over micro-batches)."""
    sequence_parallel: bool = False
    """Sequence parallelism (GPUs with TP > 1 only)."""
    distributed_optimizer: bool = False
    """Shard optimizer state across data-parallel ranks (ZeRO-1)."""

    def __post_init__(self) -> None:
        check(self.tensor >= 1, "parallel.tensor", "must be >= 1")
        check(self.pipeline >= 1, "parallel.pipeline", "must be >= 1")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr x this."""
    warmup_steps: int = 10
    """Linear warm-up steps."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    clip_grad: float = 1.0
    """Gradient clipping by global norm."""

    def __post_init__(self) -> None:
        check(self.lr > 0, "optim.lr", "must be > 0")
        check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be between 0 and 1")
        check(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        check(0 <= self.beta1 < 1, "optim.beta1", "must be in [0, 1)")
        check(0 <= self.beta2 < 1, "optim.beta2", "must be in [0, 1)")
        check(self.eps > 0, "optim.eps", "must be > 0")
        check(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        check(self.clip_grad >= 0, "optim.clip_grad", "must be >= 0 (0 = no clipping)")


@dataclass
class TrainConfig:
    steps: int = 50
    """Optimizer steps."""
    micro_batch_size: int = 4
    """Sequences per micro-batch per data-parallel rank."""
    global_batch_size: int = 8
    """Sequences per optimizer step (all micro-batches, all data-parallel ranks)."""
    rampup_batch_size: list[int] | None = None
    """Batch-size ramp-up [start, increment, samples]: start small, grow by `increment` sequences
    evenly over `samples` training samples up to global_batch_size (megatron-core's calculator)."""
    seed: int = 1234
    """Initialisation and data order."""
    split: str = "98,2,0"
    """Train/valid/test split of the token data."""
    log_interval: int = 5
    """Print a line every N steps."""
    eval_interval: int = 25
    """Validate every N steps (and at the end)."""
    eval_steps: int = 2
    """Validation batches per evaluation."""
    save_interval: int = 25
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the last K checkpoints."""
    init_checkpoint: str | None = None
    """Start from these weights: a checkpoint directory (checkpoints/iter_N) of any TP/PP layout."""
    exit_after_steps: int | None = None
    """Stop after this many steps in this run and keep the staging directory (a job that must
    fit a SLURM time limit); `--resume` continues."""
    bf16: bool | None = None
    """bf16 mixed precision; unset = on with a GPU, off (fp32) on CPU."""
    peak_tflops: float | None = None
    """Dense peak TFLOP/s of one device for MFU; unset = looked up by GPU name and dtype
    (pretrain/mfu.py: H100/H200, A100, L40S, A10, RTX 4090); none on CPU or an unknown GPU."""
    curriculum: bool = True
    """Follow the tokenize artifact's curriculum stages (blend.json) when it has them: each
    stage's blend for its token budget, then the main blend."""

    def __post_init__(self) -> None:
        check(self.steps >= 1, "train.steps", "must be >= 1")
        check(self.micro_batch_size >= 1, "train.micro_batch_size", "must be >= 1")
        check(
            self.global_batch_size >= self.micro_batch_size, "train.global_batch_size", ">= micro_batch_size"
        )
        for key in ("log_interval", "eval_interval", "eval_steps", "save_interval", "keep_checkpoints"):
            check(getattr(self, key) >= 1, f"train.{key}", "must be >= 1")
        if self.exit_after_steps is not None:
            check(self.exit_after_steps >= 1, "train.exit_after_steps", "must be >= 1 (or unset)")


@dataclass
class StabilityConfig:
    spike_factor: float = 3.0
    """A loss above this x the running median (or NaN/Inf) is a spike."""
    window: int = 20
    """Steps in the running median."""
    max_rollbacks: int = 3
    """Give up after this many rollbacks."""
    inject_spike_at: int | None = None
    """Testing: this step's update uses 10,000 x the learning rate (once), so the weights blow up
    for real and the next step's loss spikes: exercises detection and rollback (pick a step that
    is not a checkpoint step, or the blown-up weights are what rollback returns to)."""

    def __post_init__(self) -> None:
        check(self.spike_factor > 1, "stability.spike_factor", "must be > 1")
        check(self.window >= 1, "stability.window", "must be >= 1")
        check(self.max_rollbacks >= 0, "stability.max_rollbacks", "must be >= 0")


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (LLaMA-style: RMSNorm, SwiGLU, RoPE, no biases)."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Parallel layout; data parallelism = processes / (TP x PP)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """AdamW and the learning-rate schedule."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Steps, batches, intervals."""
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    """Loss-spike detection and rollback."""
    nproc: int = 1
    """Local processes (torchrun); must be a multiple of TP x PP."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.nproc >= 1, "nproc", "must be >= 1")
        mp = self.parallel.tensor * self.parallel.pipeline
        check(self.nproc % mp == 0, "nproc", f"must be a multiple of TP x PP = {mp}")
        dp = self.nproc // mp
        per_step = self.train.micro_batch_size * dp
        check(
            self.train.global_batch_size % per_step == 0,
            "train.global_batch_size",
            f"must be a multiple of micro_batch_size x data-parallel size = {per_step}",
        )
        check(
            self.optim.warmup_steps < self.train.steps,
            "optim.warmup_steps",
            f"must be smaller than train.steps ({self.train.steps})",
        )
        check(
            self.model.num_layers % self.parallel.pipeline == 0,
            "model.num_layers",
            "must divide evenly into the pipeline stages",
        )
        check(
            self.model.num_attention_heads % self.parallel.tensor == 0,
            "model.num_attention_heads",
            "must be divisible by the tensor-parallel size",
        )


# `llmctl pretrain` options -> the config keys they set (the CLI sets a key only when the option
# is given); --nproc under torchrun is the launcher's process count (pretrain.resolve_nproc)
CLI_KEYS = {"nproc": "nproc", "steps": "train.steps"}


@dataclass
class ExportConfig:
    """`llmctl export`: one pretrain checkpoint (`run.inputs`, PRETRAIN_DIR/checkpoints/iter_NNNNNNN)
    -> a Hugging Face directory. It has no recipe keys: the checkpoint's spec.json says how the
    model was built."""

    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""
