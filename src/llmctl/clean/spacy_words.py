"""spaCy words and sentences for the datatrove-exact rules (`word_tokenizer: spacy`).

    llmctl clean IN --out OUT --config recipes/clean/datatrove-gopher-c4.yaml

datatrove's Gopher and C4 filters split English text with spaCy's rule-based blank English
tokenizer (no model, nothing downloaded) and count the sentences of each kept C4 line with its
sentencizer; a word is a token with one character outside datatrove's punctuation set. With
this tokenizer the rules see the same words and sentences as datatrove's, so
recipes/clean/datatrove-gopher-c4.yaml keeps and drops what datatrove does (bench/clean_bench.py).
spaCy is optional (the 'bench' extra); the built-in regex tokenizer needs nothing.
"""

from __future__ import annotations

from llmctl.clean.heuristics import Words
from llmctl.errors import UserError

# datatrove.utils.text.PUNCTUATION_SET (Apache-2.0): its punctuation string, the C0/C1 control
# characters, and the sentence-terminal marks of other scripts (as code point ranges).
_PUNCTUATION = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
_CONTROLS = ((0x0, 0x8), (0xB, 0xC), (0xD, 0x1F), (0x7F, 0x9F))
# fmt: off
_TERMINALS = (
    (0x589, 0x589), (0x61D, 0x61F), (0x6D4, 0x6D4), (0x700, 0x702), (0x7F9, 0x7F9), (0x837, 0x837),
    (0x839, 0x839), (0x83D, 0x83E), (0x964, 0x965), (0x104A, 0x104B), (0x1362, 0x1362), (0x1367,
    0x1368), (0x166E, 0x166E), (0x1735, 0x1736), (0x17D4, 0x17D6), (0x17D9, 0x17DA), (0x1803, 0x1803),
    (0x1809, 0x1809), (0x1944, 0x1945), (0x1AA8, 0x1AAB), (0x1B5A, 0x1B5B), (0x1B5E, 0x1B5F), (0x1B7D,
    0x1B7E), (0x1C3B, 0x1C3C), (0x1C7E, 0x1C7F), (0x203C, 0x203D), (0x2047, 0x2049), (0x2E2E, 0x2E2E),
    (0x2E3C, 0x2E3C), (0x2E53, 0x2E54), (0xA4FF, 0xA4FF), (0xA60E, 0xA60F), (0xA6F3, 0xA6F3), (0xA6F7,
    0xA6F7), (0xA876, 0xA877), (0xA8CE, 0xA8CF), (0xA92F, 0xA92F), (0xA9C8, 0xA9C9), (0xAA5D, 0xAA5F),
    (0xAAF0, 0xAAF1), (0xABEB, 0xABEB), (0xFE52, 0xFE52), (0xFE56, 0xFE57), (0xFF61, 0xFF61), (0x10A56,
    0x10A57), (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x11047, 0x11048), (0x110BE, 0x110C1), (0x11141,
    0x11143), (0x111C5, 0x111C6), (0x111CD, 0x111CD), (0x111DE, 0x111DF), (0x11238, 0x11239), (0x1123B,
    0x1123C), (0x112A9, 0x112A9), (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7), (0x11641,
    0x11642), (0x1173C, 0x1173E), (0x11944, 0x11944), (0x11946, 0x11946), (0x11A42, 0x11A43), (0x11A9B,
    0x11A9C), (0x11C41, 0x11C42), (0x11EF7, 0x11EF8), (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), (0x16AF5,
    0x16AF5), (0x16B37, 0x16B38), (0x16B44, 0x16B44), (0x16E98, 0x16E98), (0x1BC9F, 0x1BC9F), (0x1DA88,
    0x1DA88)
)
# fmt: on
PUNCTUATION = frozenset(_PUNCTUATION).union(
    chr(c) for a, b in _CONTROLS + _TERMINALS for c in range(a, b + 1)
)


class SpacyWords:
    """Words of a document and sentences of a line as datatrove's English spaCy tokenizer sees them."""

    def __init__(self, key: str = "word_tokenizer"):
        try:
            import spacy
        except ImportError:
            raise UserError(
                f"{key}: 'spacy' needs spaCy, which is not installed: pip install spacy (llmctl's "
                f"bench extra has it), or set {key} to 'regex'"
            ) from None
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
        words = [t for t in tokens if not PUNCTUATION.issuperset(t)]
        alpha = sum(1 for t in tokens if any(c.isalpha() for c in t))
        return Words(words, len(tokens) - len(words), tokens=tokens, n_alpha=alpha)

    def sentences(self, line: str) -> int:
        """Sentences in a line (spaCy's sentencizer), as datatrove's C4 filter counts them."""
        with self.nlp.memory_zone():
            return sum(1 for _ in self._doc(line, False).sents)
