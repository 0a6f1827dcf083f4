"""clean's fast paths give exactly what the plain versions give: the PII patterns that open with
their first character, ftfy on the lines that need it, the repetition rules' bounds."""

from __future__ import annotations

import random
import re

import ftfy
import numpy as np
import pytest

from llmctl.clean import heuristics, pii
from llmctl.clean.config import RepetitionConfig
from llmctl.clean.heuristics import Words, _ngram_hashes, _NgramHashes, _repeated_chars, gopher_repetition
from llmctl.clean.text import fix_encoding
from tests.unit.clean.test_heuristics import PROSE

FAST = {"ssn": pii._SSN, "ipv4": pii._IPV4, "card": pii._CARD, "iban": pii._IBAN, "phone": pii._PHONE}
# a valid example of each kind, edited at random: matches, near-matches and their edges
SEEDS = {
    "ssn": "078-05-1120",
    "ipv4": "203.0.113.7",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "phone": "+1 (202) 555-0143",
}
# characters the patterns look for, and some they must not take (letters, '_', a non-ASCII digit)
CHARS = "0123456789 -.:/,()+ADEx_\n٣"


def near(seed: str, rng: random.Random) -> str:
    s = list(seed)
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        i = rng.randrange(len(s) + 1)
        edit = rng.randrange(3)
        if edit == 0 and i < len(s):
            s[i] = rng.choice(CHARS)
        elif edit == 1 and i < len(s):
            del s[i]
        else:
            s.insert(i, rng.choice(CHARS))
    return "".join(s)


def noise(rng: random.Random) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 3)))


@pytest.mark.parametrize("kind", sorted(FAST))
def test_fast_pii_patterns_match_what_the_reference_patterns_match(kind):
    reference = re.compile(pii.REFERENCE[kind])
    rng = random.Random(kind)
    texts = [
        noise(rng) + near(SEEDS[kind], rng) + noise(rng) + near(SEEDS[kind], rng) + noise(rng)
        for _ in range(10_000)
    ]
    texts += [
        "call 0044 20 7946 0958 or +1 (202) 555-0143, not 2024-01-31 or v1.2.3.4",
        "078-05-1120 000-12-3456 666-12-3456 912-34-5678 a078-05-1120 -078-05-1120",
        "4111 1111 1111 1111, 4111-1111-1111-1111 x4111111111111111 978-0-306-40615-7",
        "IBAN DE89 3704 0044 0532 0130 00 and xDE89370400440532013000 GB82WEST12345698765432",
        "10.0.0.1 1.10.0.0.1 192.168.1.255. 300.1.1.1 a1.2.3.4",
    ]
    matched = 0
    for text in texts:
        expected = [m.span() for m in reference.finditer(text)]
        assert [m.span() for m in FAST[kind].finditer(text)] == expected, text
        matched += bool(expected)
    assert matched > 1000  # the edited examples do hold matches


def test_ipv6_hint_is_in_every_candidate():
    rng = random.Random(6)
    for _ in range(30_000):
        text = "".join(rng.choice("0123abcdefABCDEF:%x \n") for _ in range(rng.randint(0, 30)))
        if pii._IPV6.search(text):
            assert pii._IPV6_HINT.search(text), text


def test_scrubber_output_unchanged_by_the_fast_paths():
    scrub = pii.Scrubber(pii.PLACEHOLDER and list(pii.PLACEHOLDER), ["US", "GB", "DE"])
    text = (
        "Mail jane.doe@example.com, call +44 20 7946 0958 or (202) 555-0143, host 203.0.113.7 or "
        "2001:db8::ff00:42:8329, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, "
        "SSN 078-05-1120, key AKIAIOSFODNN7EXAMPLE. Not PII: 2024-01-31, 10:30:00, ISBN 978-0-306-40615-7."
    )
    out, counts = scrub(text)
    assert counts == {"email": 1, "phone": 2, "ip": 2, "card": 1, "iban": 1, "ssn": 1, "secret": 1}
    assert "2024-01-31" in out and "10:30:00" in out and "978-0-306-40615-7" in out


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii\nonly\n",
        "caf\u00e9 \u201cquoted\u201d\nascii line\nÃ©tÃ© mojibake\n\n&amp; entity &lt;b&gt;\n",
        "&amp; before markup\n<b>markup</b> &amp;\nafter \u2019 &amp; it\n",  # '<' turns unescaping off
        "first &amp;\n\u00e9 <i>x</i>\n&amp; later",  # '<' on a line that ftfy fixes
        "\r\nwindows\r\nline\u2028breaks\x85\n\u00c3\u00a9\n",
        "no newline at the end \u201cx\u201d",
        "",
    ],
)
def test_fix_encoding_equals_ftfy_on_the_whole_text(text):
    assert fix_encoding(text) == ftfy.fix_text(text, normalization=None, fix_line_breaks=True)


def test_line_and_paragraph_splits_equal_the_regex_splits():
    rng = random.Random(3)
    for _ in range(3000):
        text = "".join(rng.choice("ab\n ") for _ in range(rng.randint(1, 20)))
        assert heuristics._lines(text) == re.split(r"\n+", text), repr(text)
        assert heuristics._paragraphs(text.strip()) == re.split(r"\n{2,}", text.strip()), repr(text)


def test_incremental_ngram_hashes_equal_the_direct_ones():
    ids = np.array([hash(w) for w in PROSE.split()], dtype=np.int64).view(np.uint64)
    grow = _NgramHashes(ids)
    with np.errstate(over="ignore"):
        for n in (2, 3, 4, 5, 7, 10, 3):  # growing, then back to a smaller n
            assert np.array_equal(grow(n), _ngram_hashes(ids, n))


def reference_repetition(text: str, words: list[str], cfg: RepetitionConfig) -> str | None:
    """gopher_repetition's n-gram rules without the bounds: every rule counted exactly."""
    size = len(text)
    ids = np.array([hash(w) for w in words], dtype=np.int64).view(np.uint64)
    cum = np.concatenate([[0], np.cumsum([len(w) for w in words])])
    with np.errstate(over="ignore"):
        for key, frac in sorted(cfg.top_ngram_char_frac.items(), key=lambda kv: int(kv[0])):
            k = int(key)
            if len(words) >= k:
                _, first, counts = np.unique(_ngram_hashes(ids, k), return_index=True, return_counts=True)
                at = first[counts == counts.max()].min()
                if (int(cum[at + k] - cum[at]) + k - 1) * int(counts.max()) / size > frac:
                    return f"top_{k}_gram"
        for key, frac in sorted(cfg.dup_ngram_char_frac.items(), key=lambda kv: int(kv[0])):
            k = int(key)
            if len(words) >= k and _repeated_chars(_ngram_hashes(ids, k), cum, k) / size > frac:
                return f"duplicated_{k}_n_grams"
    return None


def test_repetition_bounds_never_change_a_decision():
    """Documents built to sit near every threshold: repeated passages of varied length in prose."""
    base = PROSE.replace("\n\n", " ").split()
    cfg = RepetitionConfig(dup_line_frac=-1, dup_para_frac=-1, dup_line_char_frac=-1, dup_para_char_frac=-1)
    rng = random.Random(11)
    seen = set()
    for _ in range(400):
        words = list(base[: rng.randint(20, len(base))])
        for _ in range(rng.randint(0, 4)):  # paste a copy of a passage somewhere
            i = rng.randrange(len(words))
            passage = words[i : i + rng.randint(1, 30)]
            j = rng.randrange(len(words))
            words[j:j] = passage
        if rng.random() < 0.3:
            words = [rng.choice(["a", "to", "the", "of"]) if rng.random() < 0.3 else w for w in words]
        text = " ".join(words)
        expected = reference_repetition(text, words, cfg)
        assert gopher_repetition(text, Words(words, 0), cfg) == expected
        seen.add(expected)
    assert None in seen and any(r and r.startswith("duplicated") for r in seen)
    assert any(r and r.startswith("top") for r in seen)
