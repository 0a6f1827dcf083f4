"""Configuration of `llmctl tokenize` (recipes/tokenize/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.config import check

# ChatML with the assistant turns inside {% generation %} blocks, so that transformers'
# apply_chat_template(..., return_assistant_tokens_mask=True) marks exactly what sft trains on.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class InputConfig:
    text_field: str = "text"
    """JSON/parquet field that holds the document text."""
    id_field: str = "id"
    """Field that holds the document id."""
    max_word_chars: int = 10_000
    """A document with a longer run of non-space characters (a base64 blob, minified code, one
    10 MB string) is skipped as `too_long`: BPE encoding time grows faster than linearly with a
    word's length (about 10 s for one 1 MB word), so one such run would stall the stage."""

    def __post_init__(self) -> None:
        check(self.max_word_chars >= 1, "input.max_word_chars", "must be >= 1")


@dataclass
class SourceConfig:
    paths: list[str] = field(default_factory=list)
    """Artifacts, files or directories of this source."""
    weight: float = 1.0
    """Mixture weight (relative; megatron-core normalizes)."""

    def __post_init__(self) -> None:
        check(self.weight > 0, "sources.*.weight", f"must be a positive number, got {self.weight}")


@dataclass
class CurriculumStage:
    blend: dict[str, float] = field(default_factory=dict)
    """Source name -> weight during this stage."""
    tokens: int = 0
    """Token budget of this stage."""


@dataclass
class TokenizerConfig:
    path: str | None = None
    """Reuse this tokenizer (tokenizer.json or a Hugging Face tokenizer directory) instead of training."""
    model: str = "bpe"
    """What to train: bpe (byte-level, lossless), wordpiece or unigram."""
    vocab_size: int = 32000
    """Vocabulary size to train, special tokens included."""
    min_frequency: int = 2
    """Pairs/pieces seen fewer times are not merged (bpe, wordpiece)."""
    sample_bytes: int = 200_000_000
    """Train on at most this much text, taken from each source in proportion to its weight."""
    nfkc: bool = False
    """NFKC-normalize before tokenizing (not lossless: off for byte-level round trips)."""
    split_digits: bool = False
    """Split numbers into single digits (LLaMA style)."""
    eod: str = "<|endoftext|>"
    """End-of-document token, appended to every document."""
    pad: str = "<|pad|>"
    """Padding token."""
    unk: str = "<unk>"
    """Unknown token (wordpiece, unigram)."""
    chat_tokens: list[str] = field(default_factory=lambda: ["<|im_start|>", "<|im_end|>"])
    """Chat-turn delimiters the later stages use."""
    chat_template: str = CHATML_TEMPLATE
    """Jinja chat template saved with the tokenizer; assistant turns in {% generation %} blocks."""

    def __post_init__(self) -> None:
        check(
            self.model in ("bpe", "wordpiece", "unigram"),
            "tokenizer.model",
            "choose bpe, wordpiece or unigram",
        )
        check(self.vocab_size > 0, "tokenizer.vocab_size", "must be > 0")
        check(self.sample_bytes > 0, "tokenizer.sample_bytes", "must be > 0")

    def special_tokens(self) -> list[str]:
        specials = [self.eod, self.pad, *self.chat_tokens]
        if self.model != "bpe":
            specials.insert(0, self.unk)
        return list(dict.fromkeys(specials))


@dataclass
class TokenizeConfig:
    input: InputConfig = field(default_factory=InputConfig)
    """Input fields."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Train or reuse a tokenizer."""
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """Named inputs of the data mixture (--input NAME=PATH[:WEIGHT]); positional inputs form 'corpus'."""
    curriculum: list[CurriculumStage] = field(default_factory=list)
    """Optional ordered blends, each with a token budget (data scheduling)."""
    workers: int = 0
    """Worker processes for encoding; 0 = all cores."""
    chunk_size: int = 512
    """Documents per encode_batch call."""
    seed: int = 1234
    """Recorded in blend.json for pretrain's sampling."""

    def __post_init__(self) -> None:
        check(self.workers >= 0, "workers", "must be >= 0 (0 = all cores)")
        check(self.chunk_size > 0, "chunk_size", "must be > 0")
        for i, stage in enumerate(self.curriculum):
            check(stage.tokens > 0, f"curriculum[{i}].tokens", "must be > 0")
            check(bool(stage.blend), f"curriculum[{i}].blend", "name at least one source")
            for name, w in stage.blend.items():
                check(
                    name in self.sources or not self.sources,
                    f"curriculum[{i}].blend.{name}",
                    "unknown source",
                )
                check(w > 0, f"curriculum[{i}].blend.{name}", f"weight must be positive, got {w}")
