"""spaCy words and sentences for the datatrove-exact rules (`word_tokenizer: spacy`).

    llmctl clean IN --out OUT --config recipes/clean/datatrove-gopher-c4.yaml

datatrove's Gopher and C4 filters split English text with spaCy's rule-based blank English
tokenizer (no model, nothing downloaded) and count the sentences of each kept C4 line with its
sentencizer; a word is a token with one character outside datatrove's punctuation set (imported
from datatrove: this mode exists to reproduce datatrove's decisions, and needs it installed). With
this tokenizer the rules see the same words and sentences as datatrove's, so
recipes/clean/datatrove-gopher-c4.yaml keeps and drops what datatrove does (bench/clean_bench.py).
spaCy and datatrove are optional (the 'bench' extra); the built-in regex tokenizer needs nothing.
"""

from __future__ import annotations

from llmctl.clean.heuristics import Words
from llmctl.errors import UserError


class SpacyWords:
    """Words of a document and sentences of a line as datatrove's English spaCy tokenizer sees them."""

    def __init__(self, key: str = "word_tokenizer"):
        try:
            import spacy
            from datatrove.utils.text import PUNCTUATION_SET
        except ImportError:
            raise UserError(
                f"{key}: 'spacy' needs spaCy and datatrove, which are not installed: pip install spacy "
                f"datatrove (llmctl's bench extra has them), or set {key} to 'regex'"
            ) from None
        # datatrove's own punctuation set (imported, not copied): a word is a token with a character
        # outside it, exactly as its Gopher filter counts
        self.punctuation = frozenset(PUNCTUATION_SET)
        self.nlp = spacy.blank("en")  # rule-based tokenizer only: no model, offline
        self.nlp.add_pipe("sentencizer")

    def _doc(self, text: str, tokens_only: bool):  # noqa: ANN202 - a spacy Doc
        run = self.nlp.tokenizer if tokens_only else self.nlp
        self.nlp.max_length = len(text) + 10
        try:
            return run(text)
        except Exception:
            # datatrove's workaround: this string breaks spaCy's tokenizer; it retries without it
            if "IS_ALPHA" not in text:
                raise
            return run(text.replace("IS_ALPHA", ""))

    def tokens(self, text: str) -> list[str]:
        """spaCy's tokens, stripped, without the empty (whitespace) ones, as datatrove's split_into_words."""
        with self.nlp.memory_zone():  # new strings are not kept in the vocabulary (memory stays flat)
            return [s for s in (t.text.strip() for t in self._doc(text, True)) if s]

    def words(self, text: str) -> Words:
        tokens = self.tokens(text)
        words = [t for t in tokens if not self.punctuation.issuperset(t)]
        alpha = sum(1 for t in tokens if any(c.isalpha() for c in t))
        return Words(words, len(tokens) - len(words), tokens=tokens, n_alpha=alpha)

    def sentences(self, line: str) -> int:
        """Sentences in a line (spaCy's sentencizer), as datatrove's C4 filter counts them."""
        with self.nlp.memory_zone():
            return sum(1 for _ in self._doc(line, False).sents)
