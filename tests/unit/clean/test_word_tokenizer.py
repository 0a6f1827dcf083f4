"""word_tokenizer: the rules take their words, symbols and sentences from the tokenizer chosen;
'spacy' gives datatrove's (recipes/clean/datatrove-gopher-c4.yaml) and needs spaCy installed.

The spaCy tests skip where spaCy is absent; the rest (the key, the error without spaCy, how the
rules use a tokenizer's tokens and sentences) always run.
"""

from __future__ import annotations

import json
import sys

import pytest
import zstandard

from llmctl import config
from llmctl.clean.config import C4Config, CleanConfig, GopherQualityConfig, RepetitionConfig
from llmctl.clean.heuristics import Words, c4_lines, gopher_quality, gopher_repetition
from llmctl.clean.pipeline import Processor
from llmctl.errors import ConfigError, UserError
from llmctl.formats.documents import Document
from tests.conftest import ASSETS, REPO
from tests.unit.clean.test_heuristics import PROSE, SPEECH

DATATROVE_RECIPE = REPO / "recipes" / "clean" / "datatrove-gopher-c4.yaml"
CALIBRATION = ASSETS / "clean" / "calibration.jsonl.zst"


def test_word_tokenizer_key_is_checked():
    assert CleanConfig().word_tokenizer == "regex"
    assert config.load(CleanConfig, DATATROVE_RECIPE).word_tokenizer == "spacy"
    with pytest.raises(ConfigError, match="word_tokenizer"):
        config.load(CleanConfig, overrides=["word_tokenizer=nltk"])


def test_spacy_tokenizer_without_spacy_is_a_user_error_naming_the_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)  # import spacy raises ImportError
    with pytest.raises(UserError) as e:
        Processor(config.load(CleanConfig, DATATROVE_RECIPE))
    assert str(e.value).startswith("word_tokenizer: 'spacy' needs spaCy")
    Processor(CleanConfig())  # the built-in tokenizer needs nothing


def test_quality_rules_use_the_tokenizers_alpha_count():
    """A tokenizer that reports which tokens hold a letter decides the alphabetic ratio."""
    cfg = GopherQualityConfig(alpha_ratio_counts_symbols=True)
    regex = Words.of(SPEECH)
    assert gopher_quality(SPEECH, regex, cfg) == "gopher_below_alpha_words_ratio"
    tokens = regex.words + ["."] * regex.n_symbols
    every_word_alpha = Words(regex.words, regex.n_symbols, tokens=tokens, n_alpha=len(regex.words))
    assert gopher_quality(SPEECH, every_word_alpha, cfg) is None


def test_repetition_rules_count_ngrams_of_all_tokens():
    """With tokens (symbols included, as datatrove's) the n-grams are over the tokens."""
    text = "word , " * 40 + "end"
    words = Words(["word"] * 40 + ["end"], 40)
    cfg = RepetitionConfig(top_ngram_char_frac={}, dup_ngram_char_frac={"5": 0.15})
    assert gopher_repetition(text, words, RepetitionConfig(top_ngram_char_frac={"2": 0.2})) == "top_2_gram"
    # 'word word word ...' repeats as words; as tokens 'word , word , word' repeats too: both reject
    tokens = Words(words.words, 40, tokens=["word", ","] * 40 + ["end"])
    assert gopher_repetition(text, tokens, cfg) == "duplicated_5_n_grams"
    # a symbol-only repetition is seen only through the tokens
    text = "A b c d e f g h i j k l m n o p q r s t. " + "! ? " * 20
    plain = Words.of(text)
    assert gopher_repetition(text, plain, cfg) is None
    with_symbols = Words(plain.words, plain.n_symbols, tokens=plain.words + ["!", "?"] * 20)
    assert gopher_repetition(text, with_symbols, cfg) == "duplicated_5_n_grams"


def test_duplicated_ngrams_joined_without_spaces_as_datatrove():
    """dup_ngrams_joined compares "".join(n-gram), as datatrove's find_all_duplicate: 'ab c' repeats
    'a bc'; the characters counted equal its walk on random tokens from a vocabulary of prefixes."""
    import random

    text = "ab c a bc"
    words = Words(["ab", "c", "a", "bc"], 0, tokens=["ab", "c", "a", "bc"])
    cfg = RepetitionConfig(top_ngram_char_frac={}, dup_ngram_char_frac={"2": 0.1})
    assert gopher_repetition(text, words, cfg) is None
    cfg.dup_ngrams_joined = True
    assert gopher_repetition(text, words, cfg) == "duplicated_2_n_grams"

    def find_all_duplicate(tokens: list[str], n: int) -> int:  # datatrove's, verbatim in effect
        unique: set[str] = set()
        chars = i = 0
        while i < len(tokens) - n + 1:
            gram = "".join(tokens[i : i + n])
            if gram in unique:
                chars += len(gram)
                i += n
            else:
                unique.add(gram)
                i += 1
        return chars

    rng = random.Random(0)
    decided = set()
    for _ in range(80):
        tokens = [rng.choice(["a", "b", "ab", "ba", "é"]) for _ in range(rng.randint(5, 40))]
        text = " ".join(tokens)
        for n in (2, 3, 5):
            frac = rng.uniform(0, 0.6)
            cfg = RepetitionConfig(top_ngram_char_frac={}, dup_ngram_char_frac={str(n): frac})
            cfg.dup_ngrams_joined = True
            expected = f"duplicated_{n}_n_grams" if find_all_duplicate(tokens, n) / len(text) > frac else None
            got = gopher_repetition(text, Words(tokens, 0, tokens=tokens), cfg)
            assert got == expected, (tokens, n, frac)
            decided.add(got)
    assert decided == {None, "duplicated_2_n_grams", "duplicated_3_n_grams", "duplicated_5_n_grams"}


def test_c4_counts_sentences_with_the_tokenizers_sentencizer():
    one_line = "This line holds one sentence and nothing more than that."
    strict = C4Config(words_per_sentence=0, min_sentences=5)
    assert c4_lines(one_line, strict)[0] == "too_few_sentences"
    assert c4_lines(one_line, strict, lambda line: 5) == (None, one_line)
    counted: list[str] = []
    c4_lines(PROSE, C4Config(), lambda line: counted.append(line) or 1)
    assert counted and all(line in PROSE.replace("\n", " ") for line in counted)


# ------------------------------------------------------------------ with spaCy installed


@pytest.fixture(scope="module")
def spacy_words():
    pytest.importorskip("spacy")
    pytest.importorskip("datatrove")
    from llmctl.clean.spacy_words import SpacyWords

    return SpacyWords()


def test_spacy_words_are_spacys_tokens(spacy_words):
    w = spacy_words.words("Don't stop — in 3 years, 3.5 million jobs!\n\nWe did it (together).")
    assert w.tokens == [
        "Do", "n't", "stop", "—", "in", "3", "years", ",", "3.5", "million", "jobs", "!",
        "We", "did", "it", "(", "together", ")", ".",
    ]  # fmt: skip
    assert w.words == [t for t in w.tokens if t not in {"—", ",", "!", "(", ")", "."}]
    assert w.n_symbols == 6
    assert w.n_alpha == len(w.words) - 2  # all words hold a letter but '3' and '3.5'
    assert spacy_words.sentences("One sentence here. Another one! And a third?") == 3
    assert spacy_words.sentences("No end punctuation") == 1


def test_spacy_tokenizer_changes_the_decision_the_regex_one_makes(spacy_words):
    """On the speech paragraph, spaCy's words pass the alphabetic ratio the regex words fail."""
    cfg = config.load(CleanConfig, DATATROVE_RECIPE)
    assert gopher_quality(SPEECH, Words.of(SPEECH), cfg.quality) == "gopher_below_alpha_words_ratio"
    doc_words = spacy_words.words(SPEECH)
    assert doc_words.tokens is not None and doc_words.n_alpha is not None
    ratio = doc_words.n_alpha / len(doc_words.tokens)
    expected = None if ratio >= cfg.quality.min_alpha_words_ratio else "gopher_below_alpha_words_ratio"
    assert gopher_quality(SPEECH, doc_words, cfg.quality) == expected


def test_recipe_agrees_with_datatrove(spacy_words):
    """Keep/drop of recipes/clean/datatrove-gopher-c4.yaml equals datatrove's on varied documents."""
    pytest.importorskip("datatrove")
    from datatrove.data import Document as DtDocument
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    raw = zstandard.ZstdDecompressor().stream_reader(open(CALIBRATION, "rb")).read()
    recs = [json.loads(line) for line in raw.splitlines()][::8]
    texts = [r["text"] for r in recs] + [SPEECH, PROSE, PROSE + "\n" + SPEECH]
    filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter()]

    def datatrove_keeps(text: str) -> bool:
        doc = DtDocument(text=text, id="x")
        return all(f.filter(doc) is True for f in filters)

    proc = Processor(config.load(CleanConfig, DATATROVE_RECIPE))
    ours = [proc.document(Document(str(i), t, {}))[0] is None for i, t in enumerate(texts)]
    theirs = [datatrove_keeps(t) for t in texts]
    assert 0 < sum(theirs) < len(texts)
    assert ours == theirs
