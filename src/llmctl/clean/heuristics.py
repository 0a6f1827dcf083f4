"""Statistic- and repetition-based quality rules: Gopher (Rae et al. 2021, A1) and C4 (Raffel et al.).

Each rule returns None (keep) or the reason name of the rejection. The rule definitions follow
the papers and datatrove's implementations of them (so the two agree, see bench/clean_bench.py);
the implementation is ours: words are split once per document and shared by every rule, and
the n-gram rules hash word ids with numpy instead of joining strings.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmctl.clean.config import C4Config, GopherQualityConfig, RepetitionConfig

# A word is a run of word characters (with inner apostrophes/periods: "don't", "U.S", "3.14");
# a symbol token is a run of punctuation. Both count as words for the ratios, as in Gopher.
_WORD = re.compile(r"\w+(?:['’.]\w+)*")
_SYMBOL = re.compile(r"[^\w\s]+")
_NUMERIC = re.compile(r"(?<!\w)[\d_]+(?:['’.][\d_]+)*(?![\w'’])")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_BULLET = re.compile(r"\s*[•\-*·‣◦]\s")
_BULLET_ANY = re.compile(r"\s*[•-]")
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
# a sentence boundary inside running text: a lower-case word ends, the next sentence starts in
# upper case ("1.3. Title" and "e.g. this" are not boundaries)
_PROSE_BOUNDARY = re.compile(r"(?<=[a-z]{2})[.!?][\"'”’)\]]*\s+(?=[\"“‘(]?[A-Z])")
_END_PUNCT = (".", "?", "!", '"', "'")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass
class Words:
    """A document's words, split once and shared by every rule."""

    words: list[str]  # alphanumeric words, in order
    n_symbols: int
    tokens: list[str] | None = None
    """With a tokenizer that splits punctuation into tokens of its own (spaCy, as datatrove):
    every token, words and symbols, in order; the repetition rules count n-grams of these."""
    n_alpha: int | None = None
    """With such a tokenizer: how many tokens hold an alphabetic character (None: the words
    that are not numbers, found with a regex)."""

    @classmethod
    def of(cls, text: str) -> Words:
        return cls(_WORD.findall(text), len(_SYMBOL.findall(text)))


def gopher_quality(text: str, w: Words, cfg: GopherQualityConfig, lang: str = "en") -> str | None:
    words = w.words
    n_words = len(words) + w.n_symbols
    n_real = len(words)
    if cfg.min_words >= 0 and n_real < cfg.min_words:
        return "gopher_short_doc"
    if cfg.max_words >= 0 and n_real > cfg.max_words:
        return "gopher_long_doc"
    if n_real == 0:
        return "gopher_short_doc"
    mean_len = sum(map(len, words)) / n_real
    if cfg.min_mean_word_length >= 0 and mean_len < cfg.min_mean_word_length:
        return "gopher_below_avg_word_length"
    if cfg.max_mean_word_length >= 0 and mean_len > cfg.max_mean_word_length:
        return "gopher_above_avg_word_length"
    if cfg.max_symbol_word_ratio >= 0:
        if text.count("#") / n_words > cfg.max_symbol_word_ratio:
            return "gopher_too_many_hashes"
        if (text.count("...") + text.count("…")) / n_words > cfg.max_symbol_word_ratio:
            return "gopher_too_many_ellipsis"
    lines = text.splitlines() or [""]
    judge_lines = len(lines) >= cfg.min_lines_for_line_ratios
    if judge_lines and cfg.max_bullet_lines_ratio >= 0:
        bullet = _BULLET if cfg.bullet_needs_space else _BULLET_ANY
        bullets = sum(1 for s in lines if bullet.match(s))
        if bullets / len(lines) > cfg.max_bullet_lines_ratio:
            return "gopher_too_many_bullets"
    if judge_lines and cfg.max_ellipsis_lines_ratio >= 0:
        ellipsis = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
        if ellipsis / len(lines) > cfg.max_ellipsis_lines_ratio:
            return "gopher_too_many_end_ellipsis"
    if cfg.min_alpha_words_ratio >= 0:
        alpha = n_real - len(_NUMERIC.findall(text)) if w.n_alpha is None else w.n_alpha
        if alpha / (n_words if cfg.alpha_ratio_counts_symbols else n_real) < cfg.min_alpha_words_ratio:
            return "gopher_below_alpha_words_ratio"
    stop_words = cfg.stop_words.get(lang)
    if cfg.min_stop_words >= 0 and stop_words is not None:
        if len(set(stop_words).intersection(words)) < cfg.min_stop_words:
            return "gopher_few_stop_words"
    return None


def _duplicates(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of each window of n word ids (wrap-around arithmetic)."""
    m = len(ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    mult = np.uint64(1_000_003)
    for k in range(n):
        h = h * mult + ids[k : k + m]
    return h


class _NgramHashes:
    """_ngram_hashes(ids, n) for growing n: the n-gram hashes extend the (n-1)-gram ones by one
    multiply-add instead of n."""

    _MULT = np.uint64(1_000_003)

    def __init__(self, ids: np.ndarray):
        self.ids = ids
        self.n = 1
        self.h = ids.copy()

    def __call__(self, n: int) -> np.ndarray:
        if n < self.n:
            self.n, self.h = 1, self.ids.copy()
        while self.n < n:
            m = len(self.ids) - self.n
            self.h = self.h[:m] * self._MULT + self.ids[self.n : self.n + m]
            self.n += 1
        return self.h


# an odd multiplier has an inverse modulo 2**64, which the prefix hashes of _JoinedHashes need
_CHAR_MULT = 0x100000001B3
_CHAR_MULT_INV = pow(_CHAR_MULT, -1, 2**64)


class _JoinedHashes:
    """64-bit polynomial hash of each window of n words joined without a separator, for any n:
    datatrove's duplicated n-gram rule compares "".join(words[i:i + n]), so 'ab c' repeats 'a bc'.
    From prefix hashes of the characters P[j] = sum(c[k] * B**(j-1-k), k < j), vectorised as
    B**j * cumsum(c[k] * B**-(k+1)), the hash of the characters [a, b) is P[b] - P[a] * B**(b-a)."""

    def __init__(self, words: list[str], cum: np.ndarray):
        chars = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        m = len(chars)
        mult = np.full(m + 1, _CHAR_MULT, dtype=np.uint64)
        mult[0] = 1
        inv = np.full(m + 1, _CHAR_MULT_INV, dtype=np.uint64)
        inv[0] = 0
        with np.errstate(over="ignore"):
            self.pow = np.cumprod(mult)  # B**j
            inv[1:] = np.cumprod(inv[1:]) * chars  # c[k] * B**-(k+1)
            self.prefix = self.pow * np.cumsum(inv)
        self.cum = cum

    def __call__(self, n: int) -> np.ndarray:
        start, end = self.cum[:-n], self.cum[n:]
        with np.errstate(over="ignore"):
            return self.prefix[end] - self.prefix[start] * self.pow[end - start]


def _lines(text: str) -> list[str]:
    """re.split(r"\n+", text) (an empty first or last item where text starts or ends with a
    newline), with str.split: a third of the time."""
    lines = [x for x in text.split("\n") if x]
    if text.startswith("\n"):
        lines.insert(0, "")
    if text.endswith("\n"):
        lines.append("")
    return lines or [""]


def _paragraphs(text: str) -> list[str]:
    """re.split(r"\n{2,}", text): with at most one blank line in a row (what normalization
    leaves), a plain split on the blank line."""
    return _PARAGRAPHS.split(text) if "\n\n\n" in text else text.split("\n\n")


def gopher_repetition(text: str, w: Words, cfg: RepetitionConfig) -> str | None:
    """Gopher's repetition rules. The n-gram rules first bound the fraction with vectorised
    arithmetic and run the exact count only when the bound exceeds the threshold (the bound
    is never below the exact value, so the decision is the same; prose is far below it)."""
    if not text:
        return "empty"
    size = len(text)
    paragraphs = _paragraphs(text.strip())
    n, chars = _duplicates(paragraphs)
    if cfg.dup_para_frac >= 0 and n / len(paragraphs) > cfg.dup_para_frac:
        return "dup_para_frac"
    if cfg.dup_para_char_frac >= 0 and chars / size > cfg.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = _lines(text)
    n, chars = _duplicates(lines)
    if cfg.dup_line_frac >= 0 and n / len(lines) > cfg.dup_line_frac:
        return "dup_line_frac"
    if cfg.dup_line_char_frac >= 0 and chars / size > cfg.dup_line_char_frac:
        return "dup_line_char_frac"
    words = w.words if w.tokens is None else w.tokens
    if not words:
        return None
    n_words = len(words)
    with np.errstate(over="ignore"):
        ids = np.fromiter(map(hash, words), dtype=np.int64, count=n_words).view(np.uint64)
        lens = np.fromiter(map(len, words), dtype=np.int64, count=n_words)
        cum = np.concatenate([[0], np.cumsum(lens)])
        hashes = _NgramHashes(ids)
        joined = _JoinedHashes(words, cum) if cfg.dup_ngrams_joined else None
        for key, frac in sorted(cfg.top_ngram_char_frac.items(), key=lambda kv: int(kv[0])):
            k = int(key)
            if frac < 0 or n_words < k:
                continue
            h = hashes(k)
            ordered = np.sort(h)
            starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
            best = int(np.diff(np.append(starts, len(ordered))).max())
            # bound: the longest n-gram (words joined by spaces) that often
            if (int((cum[k:] - cum[:-k]).max()) + k - 1) * best / size <= frac:
                continue
            _, first, counts = np.unique(h, return_index=True, return_counts=True)
            at = first[counts == best].min()  # the first n-gram among the most frequent ones
            top_chars = int(cum[at + k] - cum[at]) + (k - 1)  # words joined by spaces
            if top_chars * best / size > frac:
                return f"top_{k}_gram"
        for key, frac in sorted(cfg.dup_ngram_char_frac.items(), key=lambda kv: int(kv[0])):
            k = int(key)
            if frac < 0 or n_words < k:
                continue
            h = hashes(k) if joined is None else joined(k)
            ordered = np.sort(h)
            again = ordered[1:] == ordered[:-1]
            n_again = int(np.count_nonzero(again))
            if not n_again:
                if joined is not None:
                    continue  # 'a bc' and 'ab c' repeat joined, while 'a', 'bc', 'ab', 'c' do not
                # no n-gram repeats, so no longer one does either (equal (n+1)-grams start
                # with equal n-grams): the rules for larger n cannot reject
                break
            # first bound: every counted n-gram is a later occurrence, at most the longest n-gram
            if n_again * int((cum[k:] - cum[:-k]).max()) / size <= frac:
                continue
            # second bound: characters of the words that any later occurrence covers
            order = np.argsort(h, kind="stable")  # each n-gram's first occurrence comes first
            later = order[1:][again]
            depth = np.cumsum(
                np.bincount(later, minlength=n_words + 1) - np.bincount(later + k, minlength=n_words + 1)
            )
            if int(lens[depth[:n_words] > 0].sum()) / size <= frac:
                continue
            if _repeated_chars(h, cum, k) / size > frac:
                return f"duplicated_{k}_n_grams"
    return None


def _repeated_chars(hashes: np.ndarray, cum: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, counted as datatrove's find_all_duplicate does: walking the
    n-grams in order, one seen before counts its n words, which are then skipped (and not added
    to the seen set). Only an n-gram that occurs more than once can count, so the walk visits just
    those positions (few in prose) instead of every word; the result is the same."""
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[inverse] > 1)
    occurrences: dict[int, list[int]] = {}
    for p, v in zip(repeated.tolist(), inverse[repeated].tolist(), strict=True):
        occurrences.setdefault(v, []).append(p)
    later = sorted((p, v) for v, ps in occurrences.items() for p in ps[1:])
    hits: list[int] = []  # counted positions; each skips the n - 1 positions after it
    total = free = 0
    for i, v in later:
        if i < free:
            continue  # inside a counted n-gram: never visited
        for p in occurrences[v]:
            if p >= i:
                break
            k = bisect.bisect_right(hits, p) - 1
            if k < 0 or p >= hits[k] + n or p == hits[k]:  # p was visited: its n-gram was seen
                total += int(cum[i + n] - cum[i])
                hits.append(i)
                free = i + n
                break
    return total


# Hard-wrapped text breaks lines at 60-80 columns; a line that long that ends no sentence was wrapped.
_WRAPPED_LINE_CHARS = 50


def _logical_lines(text: str, join_wrapped: bool) -> list[list[str]]:
    """Lines as C4 judges them: physical lines, or with join_wrapped the physical lines of one
    hard-wrapped sentence together. A line that ends no sentence continues on the next non-blank
    line when that starts in lower case or the line itself is wrap-long."""
    groups: list[list[str]] = []
    prev = ""
    for line in text.splitlines():
        line = line.strip()
        if (
            join_wrapped
            and prev
            and line
            and not prev.endswith(_END_PUNCT)
            and (line[0].islower() or len(prev) >= _WRAPPED_LINE_CHARS)
        ):
            groups[-1].append(line)
        else:
            groups.append([line])
        prev = line
    return groups


def c4_lines(
    text: str, cfg: C4Config, sentences: Callable[[str], int] | None = None
) -> tuple[str | None, str]:
    """C4's rules: drop bad lines, then judge the document. Returns (reason, kept text).

    sentences counts the sentences of a kept line (spaCy's sentencizer for the datatrove-exact
    recipe); by default, runs of '.', '!', '?' that end a word, at least one per line."""
    n_sentences = kept_words = 0
    kept = []
    if cfg.reject_curly_braces and cfg.max_curly_brackets_per_word > 0 and "{" in text:
        if text.count("{") > cfg.max_curly_brackets_per_word * len(text.split()):
            return "curly_bracket", text
        braces_ok = True
    else:
        braces_ok = not cfg.reject_curly_braces
    for group in _logical_lines(text, cfg.join_wrapped_lines):
        line = " ".join(group)
        words = line.split()
        if cfg.max_word_length >= 0 and any(len(x) > cfg.max_word_length for x in words):
            continue
        if cfg.remove_citations:
            line = _CITATION.sub("", line)
            group = [_CITATION.sub("", g) for g in group]
        if (
            cfg.require_terminal_punctuation
            and (not line.endswith(_END_PUNCT) or line.endswith("..."))
            and not (
                cfg.sentences_make_a_line and len(_PROSE_BOUNDARY.findall(line)) >= cfg.sentences_make_a_line
            )
        ):
            continue
        if len(words) < cfg.min_words_per_line:
            continue
        low = line.lower()
        if cfg.reject_lorem_ipsum and "lorem ipsum" in low:
            return "lorem_ipsum", text
        if cfg.drop_javascript_lines and "javascript" in low:
            continue
        if not braces_ok and "{" in line:
            return "curly_bracket", text
        if cfg.drop_policy_lines and any(p in low for p in _POLICY):
            continue
        n_sentences += sentences(line) if sentences else max(1, len(_SENTENCE_END.findall(line)))
        kept_words += len(words)
        kept.append("\n".join(group))
    n_words = len(text.split())
    needed = cfg.min_sentences
    if cfg.words_per_sentence > 0:
        needed = min(needed, max(1, n_words // cfg.words_per_sentence))
    if needed >= 0 and n_sentences < needed:
        return "too_few_sentences", text
    if cfg.min_kept_fraction >= 0 and kept_words < cfg.min_kept_fraction * n_words:
        return "too_little_kept", text
    return None, "\n".join(kept).strip()
