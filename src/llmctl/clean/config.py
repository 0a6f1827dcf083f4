"""Configuration of `llmctl clean`: every filter on/off and tunable (recipes/clean/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.config import InputConfig, RunArgs, check
from llmctl.hf import DEVICES, DTYPES

# Gopher's stop words (Rae et al. 2021, appendix A1) and the same idea for other languages:
# the eight most frequent function words.
STOP_WORDS = {
    "en": ["the", "be", "to", "of", "and", "that", "have", "with"],
    "de": ["der", "die", "und", "in", "den", "von", "zu", "das"],
    "es": ["de", "la", "que", "el", "en", "y", "a", "los"],
    "fr": ["de", "la", "le", "et", "les", "des", "en", "un"],
}
WORD_TOKENIZERS = ("regex", "spacy")
PII_TYPES = ["email", "phone", "ip", "card", "iban", "ssn", "secret"]


@dataclass
class NormalizeConfig:
    enabled: bool = True
    """Normalize text before filtering (the normalized text is what is kept)."""
    fix_mojibake: bool = True
    """Repair mojibake and other encoding damage with ftfy."""
    unicode_nfc: bool = True
    """Unicode NFC normalization."""
    whitespace: bool = True
    """Strip trailing spaces, collapse runs of spaces/tabs, at most one blank line in a row."""


@dataclass
class HtmlConfig:
    enabled: bool = True
    """Detect HTML documents and extract their main text (resiliparse) before the other filters."""
    main_content: bool = True
    """Keep only the main content (drop navigation, footers) rather than all visible text."""


@dataclass
class LanguageConfig:
    enabled: bool = True
    """Language-based filtering with py3langid (model ships in the package, offline)."""
    languages: list[str] = field(default_factory=lambda: ["en"])
    """ISO 639-1 codes to keep."""
    min_score: float = 0.65
    """Minimum normalized confidence of the detected language."""
    max_chars: int = 5000
    """Identify the language on the first N characters (long documents are not ambiguous)."""

    def __post_init__(self) -> None:
        check(0.0 <= self.min_score <= 1.0, "language.min_score", "must be in [0, 1]")
        check(bool(self.languages), "language.languages", "name at least one language, e.g. en")


@dataclass
class GopherQualityConfig:
    """Gopher's statistic rules (Rae et al. 2021, A1); a bound of -1 disables it."""

    enabled: bool = True
    """Apply these rules."""
    min_words: int = 50
    """Fewer non-symbol words than this: rejected as gopher_short_doc."""
    max_words: int = 100_000
    """More non-symbol words than this: rejected as gopher_long_doc."""
    min_mean_word_length: float = 3
    """Mean word length (characters) below this: rejected."""
    max_mean_word_length: float = 10
    """Mean word length above this: rejected."""
    max_symbol_word_ratio: float = 0.1
    """Ratio of '#' and of ellipses to words."""
    max_bullet_lines_ratio: float = 0.9
    """Fraction of lines starting with a bullet (•, -)."""
    bullet_needs_space: bool = True
    """A bullet is a marker followed by a space ('- item', '• item'); off, any line starting with
    '-' or '•' counts, as datatrove does (so a paragraph opening with '--option' is a 'bullet')."""
    max_ellipsis_lines_ratio: float = 0.3
    """Fraction of lines ending with an ellipsis."""
    min_lines_for_line_ratios: int = 3
    """The bullet and ellipsis line ratios judge documents of at least this many lines: in a
    one-line paragraph a single trailing '…' would be a ratio of 1.0 (1 = always judge, as Gopher)."""
    min_alpha_words_ratio: float = 0.8
    """Fraction of words that contain an alphabetic character."""
    alpha_ratio_counts_symbols: bool = False
    """Count punctuation runs (',', '—', '(') as words in the alphabetic ratio, as datatrove's
    spaCy tokens do. Off: the ratio is over words, as the Gopher paper states it, so prose with a
    few figures ('3.5 million, 47 percent') is not rejected for its commas."""
    min_stop_words: int = 2
    """Fewer distinct stop words than this: rejected as gopher_few_stop_words."""
    stop_words: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in STOP_WORDS.items()}
    )
    """Language -> stop words; the document's detected language picks the list ('en' when language
    id is off); languages without a list skip the rule."""

    def __post_init__(self) -> None:
        check(self.min_lines_for_line_ratios >= 1, "quality.min_lines_for_line_ratios", "must be >= 1")


@dataclass
class C4Config:
    """C4's line rules (Raffel et al. 2020): lines are dropped, then the document is judged."""

    enabled: bool = True
    """Apply these rules."""
    min_words_per_line: int = 3
    """Lines with fewer words are dropped."""
    max_word_length: int = 1000
    """A line holding a longer word is dropped."""
    require_terminal_punctuation: bool = True
    """Drop lines that do not end in . ? ! or a quote (or that end in an ellipsis)."""
    remove_citations: bool = True
    """Remove Wikipedia-style [1], [edit], [citation needed]."""
    drop_javascript_lines: bool = True
    """Drop lines that mention javascript."""
    drop_policy_lines: bool = True
    """Lines about cookies, terms of use, privacy policy."""
    reject_lorem_ipsum: bool = True
    """Reject documents containing 'lorem ipsum'."""
    reject_curly_braces: bool = True
    """Reject documents containing curly braces (code)."""
    max_curly_brackets_per_word: float = 0.02
    """With reject_curly_braces: reject only when '{' occurs more often than this per word (code
    has one every few words; a prose paragraph may quote one). 0 = any brace rejects, as C4."""
    join_wrapped_lines: bool = True
    """Judge a hard-wrapped sentence as one line: a line that does not end a sentence continues
    on the next line when that starts in lower case or the line is 50+ characters long. C4 judged
    text extracted from web pages, one paragraph per line; books, mail and plain-text docs wrap
    prose at ~72 columns, and line by line most of their lines would be dropped for lacking
    terminal punctuation."""
    sentences_make_a_line: int = 2
    """With require_terminal_punctuation: a line that already holds this many sentence boundaries
    (a lower-case word, '.', '!' or '?', then an upper-case start) is
    kept whatever its last character (a paragraph leading into a list ends with ':', a quoted one
    with '—'). 0 = judge the last character only, as C4."""
    min_kept_fraction: float = 0.3
    """Reject the document when the line rules left less than this fraction of its words: what
    is left of a menu or a link list is a fragment, not the document (-1 disables, as C4)."""
    min_sentences: int = 5
    """Documents with fewer sentences left are rejected (-1 disables). C4's 5 is for web pages;
    see words_per_sentence for shorter documents."""
    words_per_sentence: int = 100
    """Scale min_sentences to the document: a document of W words needs
    min(min_sentences, max(1, W // words_per_sentence)) sentences, so a 500-word page needs C4's
    5, a 110-word paragraph 1, and a menu or notice with no sentence left is still rejected.
    0 = every document needs min_sentences (C4 and datatrove)."""

    def __post_init__(self) -> None:
        check(self.words_per_sentence >= 0, "c4.words_per_sentence", "must be >= 0 (0 = no scaling)")
        check(self.max_curly_brackets_per_word >= 0, "c4.max_curly_brackets_per_word", "must be >= 0")
        check(self.sentences_make_a_line >= 0, "c4.sentences_make_a_line", "must be >= 0 (0 = off)")
        check(self.min_kept_fraction <= 1, "c4.min_kept_fraction", "must be <= 1 (-1 = off)")


@dataclass
class RepetitionConfig:
    """Gopher's repetition rules; a fraction of -1 disables that rule."""

    enabled: bool = True
    """Apply these rules."""
    dup_line_frac: float = 0.3
    """Max fraction of lines that repeat an earlier line."""
    dup_para_frac: float = 0.3
    """Max fraction of paragraphs that repeat an earlier paragraph."""
    dup_line_char_frac: float = 0.2
    """Max fraction of characters in repeated lines."""
    dup_para_char_frac: float = 0.2
    """Max fraction of characters in repeated paragraphs."""
    top_ngram_char_frac: dict[str, float] = field(default_factory=lambda: {"2": 0.2, "3": 0.18, "4": 0.16})
    """n -> max fraction of characters in the most frequent n-gram."""
    dup_ngram_char_frac: dict[str, float] = field(
        default_factory=lambda: {"5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10}
    )
    """n -> max fraction of characters in duplicated n-grams."""
    dup_ngrams_joined: bool = False
    """Compare the duplicated n-grams as their words joined without a space, as datatrove does
    (the words 'ab c' then repeat 'a bc'); off, as sequences of words (the Gopher definition)."""

    def __post_init__(self) -> None:
        for name, table in (
            ("top_ngram_char_frac", self.top_ngram_char_frac),
            ("dup_ngram_char_frac", self.dup_ngram_char_frac),
        ):
            for n in table:
                check(n.isdigit() and int(n) > 0, f"repetition.{name}.{n}", "keys must be positive integers")


@dataclass
class KeywordConfig:
    enabled: bool = True
    """Keyword-based filtering with the blocklists below."""
    words_file: str | None = None
    """File of blocked words/phrases, one per line ('#' comments); matched case-insensitively."""
    domains_file: str | None = None
    """File of blocked URL domains, one per line; subdomains match too."""
    max_hits: int = 0
    """Reject when more than this many blocked words/phrases occur."""


@dataclass
class PerplexityConfig:
    enabled: bool = False
    """Score documents with a local causal LM and keep a perplexity band."""
    model: str | None = None
    """Local Hugging Face causal-LM directory (e.g. a pretrain artifact's hf/)."""
    min_ppl: float | None = None
    """Absolute lower perplexity bound (very low: repeated boilerplate)."""
    max_ppl: float | None = None
    """Absolute upper perplexity bound (very high: gibberish)."""
    min_percentile: float | None = None
    """Percentile bounds (0-100) over the scored corpus, applied after scoring."""
    max_percentile: float | None = None
    """Upper percentile bound (0-100)."""
    max_tokens: int = 512
    """Score the first N tokens of each document."""
    batch_size: int = 8
    """Documents scored per forward pass (right-padded; the scores equal one-at-a-time ones)."""
    device: str = "auto"
    """Where the scorer runs: auto (CUDA when present), cpu or cuda."""
    dtype: str = "float32"
    """Scorer weights dtype: float32, bfloat16, float16, or auto (bfloat16 on a GPU, float32 on CPU)."""

    def __post_init__(self) -> None:
        if self.enabled:
            check(self.model is not None, "perplexity.model", "a local model directory is required")
        check(self.device in DEVICES, "perplexity.device", f"must be one of {', '.join(DEVICES)}")
        check(self.dtype in DTYPES, "perplexity.dtype", f"must be one of {', '.join(DTYPES)}")
        for name in ("min_percentile", "max_percentile"):
            v = getattr(self, name)
            check(v is None or 0 <= v <= 100, f"perplexity.{name}", "must be in [0, 100]")


@dataclass
class PiiConfig:
    enabled: bool = True
    """Replace personal data with typed placeholders such as <EMAIL>."""
    types: list[str] = field(default_factory=lambda: list(PII_TYPES))
    """Which kinds to replace: email, phone, ip, card, iban, ssn, secret."""
    phone_regions: list[str] = field(default_factory=lambda: ["US", "GB", "DE", "FR", "ES", "IT", "NL"])
    """Regions whose national phone formats are recognised (international +CC numbers always are)."""

    def __post_init__(self) -> None:
        for t in self.types:
            check(t in PII_TYPES, "pii.types", f"unknown type {t!r}; choose from {', '.join(PII_TYPES)}")


@dataclass
class CleanConfig:
    input: InputConfig = field(default_factory=InputConfig)
    """Input fields."""
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    """Text normalization."""
    html: HtmlConfig = field(default_factory=HtmlConfig)
    """HTML main-text extraction."""
    language: LanguageConfig = field(default_factory=LanguageConfig)
    """Language-based filtering."""
    quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    """Gopher statistic rules."""
    c4: C4Config = field(default_factory=C4Config)
    """C4 line rules."""
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    """Gopher repetition rules."""
    keywords: KeywordConfig = field(default_factory=KeywordConfig)
    """Keyword and domain blocklists."""
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    """Metric-based filtering with a local LM."""
    pii: PiiConfig = field(default_factory=PiiConfig)
    """Privacy reduction."""
    word_tokenizer: str = "regex"
    """How the Gopher rules split a document into words and C4 counts the sentences of a line:
    'regex' (built in: words are runs of word characters, punctuation runs count as symbols) or
    'spacy' (spaCy's rule-based blank English tokenizer and sentencizer, which datatrove's
    filters use: recipes/clean/datatrove-gopher-c4.yaml; needs spaCy, the 'bench' extra, and is
    several times slower)."""
    max_doc_chars: int = 5_000_000
    """Longer documents are rejected as too_long before any processing (a runaway single line)."""
    workers: int = 0
    """Worker processes; 0 = all cores."""
    strict: bool = False
    """Stop with exit code 2 at the first malformed record instead of rejecting it."""
    chunk_size: int = 256
    """Documents per unit of work sent to a worker."""
    num_shards: int = 1
    """Split the input files into this many shards (SLURM array tasks)."""
    shard_index: int = 0
    """Which shard this process runs."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.word_tokenizer in WORD_TOKENIZERS, "word_tokenizer", "must be 'regex' or 'spacy'")
        check(self.workers >= 0, "workers", "must be >= 0 (0 = all cores)")
        check(self.chunk_size > 0, "chunk_size", "must be > 0")
        check(self.max_doc_chars > 0, "max_doc_chars", "must be > 0")
        check(self.num_shards >= 1, "num_shards", "must be >= 1")
        check(
            0 <= self.shard_index < self.num_shards, "shard_index", f"must be in [0, {self.num_shards - 1}]"
        )


# `llmctl clean` options -> the config keys they set (the CLI sets a key only when the option is
# given); --num-shards/--shard-index also default to the SLURM job array (config.slurm_array)
CLI_KEYS = {
    "languages": "language.languages",
    "workers": "workers",
    "text_field": "input.text_field",
    "id_field": "input.id_field",
    "strict": "strict",
    "num_shards": "num_shards",
    "shard_index": "shard_index",
    "device": "perplexity.device",  # the perplexity scorer's
    "dtype": "perplexity.dtype",
}
