"""Gopher quality/repetition and C4 rules: each rejects the defect it names, prose passes."""

from __future__ import annotations

import pytest

from llmctl.clean.config import C4Config, GopherQualityConfig, RepetitionConfig
from llmctl.clean.heuristics import Words, c4_lines, gopher_quality, gopher_repetition
from tests.unit.clean.corpus import prose

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


def test_c4_drops_lines_and_rejects_documents():
    cfg = C4Config()
    text = (
        PROSE + "\nEnable javascript to continue.\nShort line\nWe use cookies to improve this site.\n[edit]"
    )
    reason, kept = c4_lines(text, cfg)
    assert reason is None
    assert "javascript" not in kept and "cookies" not in kept and "Short line" not in kept
    assert c4_lines(PROSE + "\nLorem ipsum dolor sit amet, consectetur.", cfg)[0] == "lorem_ipsum"
    assert c4_lines(PROSE + "\nint main() { return 0; }.", cfg)[0] == "curly_bracket"
    assert c4_lines("One sentence only here.", cfg)[0] == "too_few_sentences"
    assert c4_lines("One sentence only here.", C4Config(min_sentences=-1))[0] is None
