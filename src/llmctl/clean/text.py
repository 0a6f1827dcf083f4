"""Text transforms and simple filters of `llmctl clean`: normalization, HTML extraction,
language identification and keyword/domain blocklists."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from llmctl.clean.config import HtmlConfig, KeywordConfig, LanguageConfig, NormalizeConfig
from llmctl.errors import UserError

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")
_HTML_TAG = re.compile(r"<(?:!doctype\s+html|html|head|body|div|p|table|br|span|a\s|font|td|li)\b", re.I)
_ANY_TAG = re.compile(r"<[!/]?[a-zA-Z][^<>]{0,500}>")
_URL_HOST = re.compile(r"\b(?:https?://|www\.)([A-Za-z0-9.-]+\.[A-Za-z]{2,})", re.I)


# What ftfy can repair: non-ASCII characters, control characters (\r included) and HTML entities.
# Printable ASCII without '&' comes back from ftfy unchanged (each of its fixes needs one of
# those; checked on the 11,031 documents of the bench corpus), and skipping it saves its time.
_FTFY_WORK = re.compile(r"[^\x09\x0a\x20-\x7e]|&")


def fix_encoding(text: str) -> str:
    """ftfy.fix_text(text, normalization=None, fix_line_breaks=True), calling ftfy only on the
    lines that can need it. ftfy fixes a text line by line (each segment up to and including a
    '\n'), so most lines of a document with one curly quote would go through all of its fixes
    for nothing; here runs of lines that need work go to ftfy together, the others are copied.
    The one state ftfy carries from line to line is unescape_html='auto', which turns off for
    the rest of the text at the first line holding a '<': passed on explicitly."""
    import ftfy

    if not _FTFY_WORK.search(text):
        return text
    lines = text.split("\n")
    last = len(lines) - 1
    first_lt = text.find("<")
    out: list[str] = []
    run: list[str] = []  # consecutive lines that need ftfy, each with its '\n'
    pos = run_start = 0
    for i, line in enumerate(lines):
        if i < last:
            line += "\n"
        if _FTFY_WORK.search(line):
            if not run:
                run_start = pos
            run.append(line)
        else:
            if run:
                out.append(_ftfy_run(ftfy, "".join(run), 0 <= first_lt < run_start))
                run = []
            out.append(line)
        pos += len(line)
    if run:
        out.append(_ftfy_run(ftfy, "".join(run), 0 <= first_lt < run_start))
    return "".join(out)


def _ftfy_run(ftfy, text: str, after_markup: bool) -> str:  # noqa: ANN001 - the ftfy module
    # normalization is ours (below); ftfy only repairs encoding damage
    kw = {"unescape_html": False} if after_markup else {}
    return ftfy.fix_text(text, normalization=None, fix_line_breaks=True, **kw)


def normalize(text: str, cfg: NormalizeConfig) -> str:
    if cfg.fix_mojibake:
        text = fix_encoding(text)
    if cfg.unicode_nfc:
        text = unicodedata.normalize("NFC", text)
    if cfg.whitespace:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _SPACES.sub(" ", text)
        text = _TRAILING.sub("\n", text)
        text = _BLANKS.sub("\n\n", text).strip()
    return text


def looks_like_html(text: str) -> bool:
    """HTML when it has structural tags and markup is a large share of the characters."""
    head = text[:20000]
    if re.match(r"\s*<(?:!doctype\s+html|html)\b", head, re.I):
        return True
    if not _HTML_TAG.search(head):
        return False
    tag_chars = sum(len(m) for m in _ANY_TAG.findall(head))
    return tag_chars / max(1, len(head)) > 0.15


def html_to_text(text: str, cfg: HtmlConfig) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(text, main_content=cfg.main_content, alt_texts=False, links=False)


class LanguageId:
    """py3langid with normalized probabilities: its model ships inside the package (offline)."""

    def __init__(self, cfg: LanguageConfig):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.cfg = cfg
        self.keep = set(cfg.languages)
        self.model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def __call__(self, text: str) -> tuple[str, float]:
        lang, score = self.model.classify(text[: self.cfg.max_chars])
        return lang, float(score)


def _read_list(path: str, what: str) -> list[str]:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"keywords.{what}: cannot read {p}: {e.strerror}") from None
    return [s.strip().lower() for s in lines if s.strip() and not s.lstrip().startswith("#")]


class Blocklist:
    """Blocked words/phrases (whole-word, case-insensitive) and URL domains (with subdomains)."""

    def __init__(self, cfg: KeywordConfig, base: Path | None = None):
        self.cfg = cfg
        words = _read_list(_resolve(cfg.words_file, base), "words_file") if cfg.words_file else []
        self.domains = (
            set(_read_list(_resolve(cfg.domains_file, base), "domains_file")) if cfg.domains_file else set()
        )
        self.words = (
            re.compile(
                r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b", re.I
            )
            if words
            else None
        )

    def __call__(self, text: str) -> str | None:
        if self.domains:
            for host in _URL_HOST.findall(text):
                parts = host.lower().rstrip(".").split(".")
                if any(".".join(parts[i:]) in self.domains for i in range(len(parts) - 1)):
                    return "blocked_domain"
        if self.words is not None:
            hits = len(self.words.findall(text))
            if hits > self.cfg.max_hits:
                return "blocked_keywords"
        return None


def _resolve(path: str | None, base: Path | None) -> str:
    """Recipe-relative paths: a list named in a recipe is looked up next to the recipe first."""
    assert path is not None
    p = Path(path)
    if not p.is_absolute() and not p.exists() and base is not None and (base / p).exists():
        return str(base / p)
    return path
