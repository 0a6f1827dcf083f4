"""Configuration of `llmctl tokenize` (recipes/tokenize/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmctl.config import InputConfig, RunArgs, check, load
from llmctl.errors import UserError
from llmctl.hf import CHATML_TEMPLATE  # ChatML, the assistant turns in {% generation %} blocks


@dataclass
class TokenizeInputConfig(InputConfig):
    """The data stages' input fields, plus a bound on word length."""

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
    input: TokenizeInputConfig = field(default_factory=TokenizeInputConfig)
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
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

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


# `llmctl tokenize` options -> the config keys they set (the CLI sets a key only when the option
# is given); the sources come from `cli_sources`
CLI_KEYS = {
    "tokenizer": "tokenizer.path",
    "model": "tokenizer.model",
    "vocab_size": "tokenizer.vocab_size",
    "workers": "workers",
}


def cli_sources(
    recipe: str | Path | None, overrides: list[str] | None, specs: list[str], inputs: list[Path]
) -> dict[str, dict[str, Any]] | None:
    """The `sources` key from the command line: the recipe's (and --set's) sources, then each
    `--input NAME=PATH[:WEIGHT]`, then the positional INPUTs as the source 'corpus'."""
    base = load(TokenizeConfig, recipe, overrides, {})
    sources = {name: {"paths": s.paths, "weight": s.weight} for name, s in base.sources.items()}
    given: set[str] = set()
    for spec in specs:
        name, paths, weight = parse_source(spec)
        if name in given:
            raise UserError(f"--input {spec}: the source name '{name}' is used twice")
        given.add(name)
        sources[name] = {"paths": paths, "weight": weight}
    if inputs:
        if "corpus" in given:
            raise UserError("positional INPUTs form the source 'corpus'; do not also pass --input corpus=...")
        sources["corpus"] = {"paths": [str(p) for p in inputs], "weight": 1.0}
    return sources or None


def parse_source(spec: str) -> tuple[str, list[str], float]:
    """NAME=PATH[:WEIGHT] -> (name, [path], weight); PATH may hold commas for several paths."""
    if "=" not in spec:
        raise UserError(f"--input {spec}: expected NAME=PATH[:WEIGHT], e.g. web=runs/clean_web:0.7")
    name, rest = spec.split("=", 1)
    if not name.isidentifier():
        raise UserError(f"--input {spec}: the source name must be a word (letters, digits, _), got {name!r}")
    weight = 1.0
    path, sep, tail = rest.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            raise UserError(f"--input {spec}: the weight {tail!r} is not a number") from None
    else:
        path = rest
    if not weight > 0:
        raise UserError(f"--input {spec}: the weight must be a positive number, got {tail}")
    return name, [p for p in path.split(",") if p], weight
