"""Configuration of `llmctl eval` (recipes/eval/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.config import RunArgs, check
from llmctl.hf import DEVICES, DTYPES

STRATEGIES = ("greedy", "beam", "sample")


@dataclass
class GenerationConfig:
    strategy: str = "greedy"
    """Decoding: greedy, beam (beam search) or sample (temperature / top-k / top-p)."""
    max_new_tokens: int = 32
    """Tokens to generate at most per item."""
    num_beams: int = 4
    """Beams for strategy=beam."""
    length_penalty: float = 1.0
    """Beam search: score / length**length_penalty (> 1 favours longer answers)."""
    temperature: float = 1.0
    """Sampling temperature (strategy=sample)."""
    top_k: int = 0
    """Sample among the k most likely tokens (0 = off)."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens with this total probability (1 = off)."""
    repetition_penalty: float = 1.0
    """Divide the logits of tokens already present by this (CTRL; 1 = off)."""
    stop: list[str] = field(default_factory=lambda: ["\n\n"])
    """Stop strings: generation ends at the first one, which is cut from the answer."""

    def __post_init__(self) -> None:
        check(self.strategy in STRATEGIES, "generation.strategy", f"must be one of {', '.join(STRATEGIES)}")
        check(self.max_new_tokens >= 1, "generation.max_new_tokens", "must be >= 1")
        check(self.num_beams >= 1, "generation.num_beams", "must be >= 1")
        check(self.temperature > 0, "generation.temperature", "must be > 0")
        check(self.top_k >= 0, "generation.top_k", "must be >= 0")
        check(0 < self.top_p <= 1, "generation.top_p", "must be in (0, 1]")
        check(self.repetition_penalty > 0, "generation.repetition_penalty", "must be > 0")


@dataclass
class PerplexityConfig:
    max_length: int | None = None
    """Window length in tokens; unset = the model's max_position_embeddings (at most 2048)."""
    stride: int | None = None
    """Tokens the window advances by (< max_length): each token is scored once, in the window that
    ends with it, after at least max_length - stride tokens of context. Unset = max_length // 2."""
    text_field: str = "text"
    """JSONL field that holds the text."""

    def __post_init__(self) -> None:
        check(self.max_length is None or self.max_length >= 2, "perplexity.max_length", "must be >= 2")
        check(self.stride is None or self.stride >= 1, "perplexity.stride", "must be >= 1")
        if self.stride is not None and self.max_length is not None:
            check(
                self.stride < self.max_length,
                "perplexity.stride",
                "must be below max_length (windows overlap)",
            )


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=list)
    """Tasks: shipped task names (llmctl/eval/tasks_data/), paths to task YAML files, or perplexity:PATH."""
    limit: int | None = None
    """Score only the first N items of each task."""
    batch_size: int = 8
    """Sequences per forward pass."""
    num_fewshot: int | None = None
    """In-context demonstrations per item; unset = each task's own setting."""
    seed: int = 1234
    """Seed for the demonstrations drawn and for sampling."""
    dtype: str = "float32"
    """Model weights dtype: float32, bfloat16, float16, or auto (bfloat16 on a GPU, float32 on CPU)."""
    device: str = "auto"
    """Where the models run: auto (CUDA when present), cpu or cuda."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Decoding for generation tasks."""
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    """Sliding-window perplexity."""
    judge: list[str] = field(default_factory=list)
    """Reward-model artifacts (llmctl rm, or its combined scorer) that judge generation tasks' answers:
    mean reward per model and, with several models, pairwise win rates (llmctl.eval.judge)."""
    contamination_index: str | None = None
    """A dedup artifact (or directory) with ngram_index.{npy,json}; unset = found in the model's lineage."""
    contamination: bool = True
    """Mark items whose 13-grams occur in the training data and score the clean subset apart."""
    chat: bool = False
    """Score and generate through each model's chat template (prompt as the user turn, demonstrations
    as earlier turns, the answer as the assistant's), as lm-eval's --apply_chat_template
    --fewshot_as_multiturn; a task's own `chat: true` sets it for that task."""
    system: str | None = None
    """The system turn under chat (overrides a task's `system`); unset = the task's, else none."""
    shared_context: bool = True
    """Multiple choice: encode each item's context once and score its choices against the cached
    prefix (false: one full sequence per choice, as lm-eval does)."""
    chunk_items: int = 1000
    """Items per checkpoint within a task: --resume continues a killed task from its last whole chunk."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.limit is None or self.limit >= 1, "limit", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.num_fewshot is None or self.num_fewshot >= 0, "num_fewshot", "must be >= 0")
        check(self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}")
        check(self.chunk_items >= 1, "chunk_items", "must be >= 1")


# `llmctl eval` options -> the config keys they set (the CLI sets a key only when the option is
# given); --tasks is a comma-separated list
CLI_KEYS = {
    "limit": "limit",
    "batch_size": "batch_size",
    "num_fewshot": "num_fewshot",
    "seed": "seed",
    "decoding": "generation.strategy",
    "num_beams": "generation.num_beams",
    "length_penalty": "generation.length_penalty",
    "temperature": "generation.temperature",
    "top_k": "generation.top_k",
    "top_p": "generation.top_p",
    "repetition_penalty": "generation.repetition_penalty",
    "max_new_tokens": "generation.max_new_tokens",
    "stop": "generation.stop",
    "judge": "judge",
    "contamination_index": "contamination_index",
    "device": "device",
    "dtype": "dtype",
    "chat": "chat",
    "system": "system",
}
