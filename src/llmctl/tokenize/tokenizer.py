"""Train, load and save tokenizers with Hugging Face `tokenizers` (and `transformers`, through
`llmctl.hf`, to save).

    tok = train(cfg.tokenizer, texts)          # byte-level BPE, WordPiece or Unigram
    tok = load("path/to/tokenizer.json")       # or a Hugging Face tokenizer directory
    save(tok, cfg.tokenizer, out / "tokenizer")

The saved directory loads with both `tokenizers.Tokenizer.from_file(dir/"tokenizer.json")` and
transformers (`llmctl.hf.load_tokenizer(dir)`), and carries the chat template.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from llmctl.errors import UserError
from llmctl.tokenize.config import TokenizerConfig

BYTE_ALPHABET = 256


def _pre_tokenizer(cfg: TokenizerConfig, base: pre_tokenizers.PreTokenizer) -> pre_tokenizers.PreTokenizer:
    if cfg.split_digits:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), base])
    return base


def check_vocab(cfg: TokenizerConfig) -> None:
    """A vocabulary must hold the special tokens plus the base alphabet (exit 2 otherwise)."""
    specials = len(cfg.special_tokens())
    floor = specials + (BYTE_ALPHABET + 1 if cfg.model == "bpe" else 100)
    if cfg.vocab_size < floor:
        what = f"{specials} special tokens" + (" and the 256 byte symbols" if cfg.model == "bpe" else "")
        raise UserError(
            f"tokenizer.vocab_size {cfg.vocab_size} is too small for {what}; use at least {floor}"
        )


def train(cfg: TokenizerConfig, texts: Iterator[str]) -> Tokenizer:
    check_vocab(cfg)
    specials = cfg.special_tokens()
    if cfg.model == "bpe":  # GPT-2/LLaMA-style byte-level BPE: lossless on any Unicode
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = _pre_tokenizer(
            cfg, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        )
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif cfg.model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=cfg.unk))
        tok.pre_tokenizer = _pre_tokenizer(cfg, pre_tokenizers.BertPreTokenizer())
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=specials,
            show_progress=False,
        )
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = _pre_tokenizer(cfg, pre_tokenizers.Metaspace())
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=cfg.vocab_size, special_tokens=specials, unk_token=cfg.unk, show_progress=False
        )
    if cfg.nfkc:
        tok.normalizer = normalizers.NFKC()
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load(path: str | Path) -> Tokenizer:
    """tokenizer.json, or a directory holding one (a Hugging Face tokenizer directory)."""
    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise UserError(f"tokenizer.path {p}: no tokenizer.json there (only fast tokenizers are supported)")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
        raise UserError(f"tokenizer.path {file}: does not load with tokenizers ({e})") from None


def token_id(tok: Tokenizer, token: str, what: str) -> int:
    tid = tok.token_to_id(token)
    if tid is None:
        raise UserError(f"tokenizer.{what} {token!r} is not in the tokenizer's vocabulary; name one that is")
    return tid


def save(tok: Tokenizer, cfg: TokenizerConfig, directory: Path, source: str | None = None) -> None:
    """Save for `tokenizers` and `transformers` alike, with the chat template and special tokens."""
    from llmctl import hf

    directory.mkdir(parents=True, exist_ok=True)
    if source is not None and Path(source).is_dir():  # keep the original's config where it has one
        fast = hf.load_tokenizer(source, what="tokenizer.path")
        if not getattr(fast, "is_fast", False):
            raise UserError(f"tokenizer.path {source}: not a fast tokenizer")
    else:
        fast = hf.fast_tokenizer(tok)
    present = lambda t: t is not None and tok.token_to_id(t) is not None  # noqa: E731
    fast.eos_token = cfg.eod if present(cfg.eod) else fast.eos_token
    if present(cfg.pad):
        fast.pad_token = cfg.pad
    if cfg.model != "bpe" and present(cfg.unk):
        fast.unk_token = cfg.unk
    chat = [t for t in cfg.chat_tokens if present(t)]
    if chat:
        fast.add_special_tokens({"additional_special_tokens": chat})
    fast.chat_template = cfg.chat_template
    hf.save_tokenizer(fast, directory)
