"""Gopher quality/repetition and C4 rules: each rejects the defect it names, prose passes."""

from __future__ import annotations

import dataclasses

import pytest

from llmctl import config
from llmctl.clean.config import C4Config, CleanConfig, GopherQualityConfig, RepetitionConfig
from llmctl.clean.heuristics import Words, c4_lines, gopher_quality, gopher_repetition
from tests.conftest import REPO
from tests.fixtures.corpus import prose

PROSE = prose(1)[0]


def quality(text: str, **kw) -> str | None:
    return gopher_quality(text, Words.of(text), GopherQualityConfig(**kw))


def repetition(text: str, **kw) -> str | None:
    return gopher_repetition(text, Words.of(text), RepetitionConfig(**kw))


def test_prose_passes_every_rule():
    assert quality(PROSE) is None
    assert repetition(PROSE) is None
    reason, text = c4_lines(PROSE, C4Config())
    assert reason is None and text.split() == PROSE.split()


@pytest.mark.parametrize(
    "text,reason",
    [
        ("only a few words here", "gopher_short_doc"),
        (" ".join(["a"] * 60), "gopher_below_avg_word_length"),
        (" ".join(["incomprehensibilities"] * 60), "gopher_above_avg_word_length"),
        (PROSE + " #tag" * 150, "gopher_too_many_hashes"),
        (PROSE + " wait..." * 150, "gopher_too_many_ellipsis"),
        (
            "\n".join(f"- item number {i} of the list with the things" for i in range(60)),
            "gopher_too_many_bullets",
        ),
        (
            "\n".join(f"and then the story of line {i} goes on..." for i in range(60)),
            "gopher_too_many_end_ellipsis",
        ),
        (" ".join(f"{i + 1000} {i + 2000} the" for i in range(60)), "gopher_below_alpha_words_ratio"),
        (" ".join(["python", "code", "runs", "fast"] * 20), "gopher_few_stop_words"),
    ],
)
def test_gopher_quality_rejections(text, reason):
    assert quality(text) == reason


def test_stop_words_follow_the_language():
    german = "Der Hund und die Katze spielen in dem Garten von dem Haus zu der Zeit " * 5
    assert quality(german) == "gopher_few_stop_words"  # English list
    assert gopher_quality(german, Words.of(german), GopherQualityConfig(), "de") is None
    assert gopher_quality(german, Words.of(german), GopherQualityConfig(), "xx") is None  # no list: skipped


def test_disabled_bound_is_skipped():
    assert quality("only a few words here", min_words=-1, min_stop_words=-1) is None


@pytest.mark.parametrize(
    "text,reason",
    [
        ("\n\n".join(["the same paragraph again"] * 5 + [PROSE]), "dup_para_frac"),
        ("\n".join(["the same line over and over"] * 30 + [PROSE]), "dup_line_frac"),
        (PROSE + "\n" + "\n".join(["x " * 300] * 3), "dup_line_char_frac"),
        (" ".join(["to be"] * 300), "top_2_gram"),
    ],
)
def test_repetition_rejections(text, reason):
    assert repetition(text) == reason


def test_ngram_rules():
    text = PROSE + " " + " ".join(["the big red dog"] * 60)
    assert repetition(
        text, dup_line_frac=-1, dup_para_frac=-1, dup_line_char_frac=-1, dup_para_char_frac=-1
    ) in (
        "top_2_gram",
        "top_3_gram",
        "top_4_gram",
    )
    words = PROSE.split()
    doubled = " ".join(words[:150] + words[:150])  # a long repeated passage, no repeated lines
    assert repetition(doubled, top_ngram_char_frac={}) == "duplicated_5_n_grams"


def strict() -> CleanConfig:
    """recipes/clean/c4-strict.yaml: the rules exactly as datatrove implements them."""
    return config.load(CleanConfig, REPO / "recipes" / "clean" / "c4-strict.yaml")


def test_c4_drops_lines_and_rejects_documents():
    cfg = strict().c4
    text = (
        PROSE + "\nEnable javascript to continue.\nShort line\nWe use cookies to improve this site.\n[edit]"
    )
    for c4 in (cfg, C4Config()):
        reason, kept = c4_lines(text, c4)
        assert reason is None
        assert "javascript" not in kept and "cookies" not in kept and "Short line" not in kept
        assert c4_lines(PROSE + "\nLorem ipsum dolor sit amet, consectetur.", c4)[0] == "lorem_ipsum"
    assert c4_lines(PROSE + "\nint main() { return 0; }.", cfg)[0] == "curly_bracket"
    assert c4_lines("One sentence only here.", cfg)[0] == "too_few_sentences"
    assert c4_lines("One sentence only here.", C4Config(min_sentences=-1, words_per_sentence=0))[0] is None


# A paragraph of a speech: four sentences, figures, commas and dashes (the prose C4's and
# datatrove's page rules reject).
SPEECH = (
    "In just 3 years, our businesses have created 3.5 million new jobs, and 47 percent of them came "
    "from 12,000 small firms in 50 states that most people in this chamber have never heard of — "
    "3 times faster than the "
    "decade before. Those are not just numbers; they are families who can pay the rent, parents who can "
    "save for college, and 100 towns where the lights are back on. We did it together, across party lines, "
    "because we agreed in 2013 that work should pay. Now, in 2014, we will finish the job and make sure "
    "that every worker shares in the recovery."
)


def test_defaults_keep_a_four_sentence_paragraph_that_the_page_rules_reject():
    cfg = CleanConfig()
    assert gopher_quality(SPEECH, Words.of(SPEECH), cfg.quality) is None
    assert c4_lines(SPEECH, cfg.c4) == (None, SPEECH)
    s = strict()
    assert gopher_quality(SPEECH, Words.of(SPEECH), s.quality) == "gopher_below_alpha_words_ratio"
    assert c4_lines(SPEECH, s.c4)[0] == "too_few_sentences"


def test_sentence_minimum_scales_with_length():
    cfg = C4Config()
    sentences = PROSE.replace("\n\n", " ").split(". ")
    page = ". ".join(sentences[:4]) + "."  # ~4 sentences of a ~100-word paragraph: kept
    assert c4_lines(page, cfg)[0] is None
    long_one = " ".join(["word"] * 520) + "."  # one 520-word "sentence": needs 5
    assert c4_lines(long_one, cfg)[0] == "too_few_sentences"
    assert c4_lines("Home\nAbout us\nContact", cfg)[0] == "too_few_sentences"  # nothing left


def test_a_paragraph_ending_in_a_colon_is_kept_a_title_is_dropped():
    cfg = C4Config()
    para = "Xen has several network models. Each has its uses. The simplest is the bridge model, as follows:"
    text = "Network Models\n" + para + "\nThe bridge is the default one, and it works well."
    reason, kept = c4_lines(text, cfg)
    assert reason is None and kept == para + "\nThe bridge is the default one, and it works well."
    lines_only = dataclasses.replace(strict().c4, min_sentences=-1)
    assert c4_lines(text, lines_only)[1] == "The bridge is the default one, and it works well."


def test_hard_wrapped_prose_is_judged_by_sentence_not_by_line():
    import textwrap

    wrapped = textwrap.fill(PROSE.replace("\n\n", " "), 72)
    reason, kept = c4_lines(wrapped, C4Config())
    assert reason is None and kept == wrapped
    reason, kept = c4_lines(wrapped, strict().c4)  # line by line, most lines go
    assert reason is not None or len(kept) < len(wrapped) / 2


def test_menu_with_one_sentence_left_is_a_fragment():
    titles = [f"{i}.{j}. Managing the Services of Section {i}" for i in range(1, 4) for j in range(1, 5)]
    menu = "\n".join(titles + ["What is new in this release, and how do I upgrade my machines?"])
    assert c4_lines(menu, C4Config())[0] == "too_little_kept"


def test_braces_quoted_in_prose_pass_code_does_not():
    cfg = C4Config()
    quoted = PROSE + " For example, allow syslogd_t device_t:fifo_file { read write }."
    assert c4_lines(quoted, cfg)[0] is None
    code = PROSE + "\n" + "\n".join(f"int f{i}() {{ if (x) {{ return {i}; }} }}" for i in range(8))
    assert c4_lines(code, cfg)[0] == "curly_bracket"


def test_line_ratio_rules_need_lines():
    cfg = CleanConfig().quality
    option = "--graphics vnc states that the console is available over VNC. " + PROSE.replace("\n\n", " ")
    assert gopher_quality(option, Words.of(option), cfg) is None
    assert gopher_quality(option, Words.of(option), strict().quality) == "gopher_too_many_bullets"
    trailing = PROSE.replace("\n\n", " ") + " or even steal the entire machine…"
    assert gopher_quality(trailing, Words.of(trailing), cfg) is None
    assert gopher_quality(trailing, Words.of(trailing), strict().quality) == "gopher_too_many_end_ellipsis"


def test_repeated_chars_equals_the_sequential_walk():
    """The candidate-only walk counts exactly what datatrove's find_all_duplicate loop counts,
    also on adversarial sequences (tiny vocabularies: overlapping repeats everywhere)."""
    import random

    import numpy as np

    from llmctl.clean.heuristics import _ngram_hashes, _repeated_chars

    def walk(hashes: list[int], cum, n: int) -> int:
        seen: set[int] = set()
        total = i = 0
        while i < len(hashes):
            if hashes[i] in seen:
                total += int(cum[i + n] - cum[i])
                i += n
            else:
                seen.add(hashes[i])
                i += 1
        return total

    rng = random.Random(0)
    counted = 0
    for _ in range(500):
        vocab = ["a", "bb", "ccc", "dddd"][: rng.randint(1, 4)]
        words = [rng.choice(vocab) for _ in range(rng.randint(5, 60))]
        ids = np.array([hash(w) for w in words], dtype=np.int64).view(np.uint64)
        cum = np.concatenate([[0], np.cumsum([len(w) for w in words])])
        for n in (5, 7, 10):
            if len(words) >= n:
                with np.errstate(over="ignore"):
                    h = _ngram_hashes(ids, n)
                expected = walk(h.tolist(), cum, n)
                assert _repeated_chars(h, cum, n) == expected
                counted += expected > 0
    assert counted > 100  # the sequences do repeat
