"""Offline language identifiers compared: accuracy on short and long texts, and speed.

    python bench/langid_bench.py data/sample

Candidates whose model ships inside their package: py3langid (what `llmctl clean` uses),
lingua-language-detector, pycld2. Ground truth is each sample source's language: State of the
Union and Python docs (en), fortunes-de (de), fortunes-es (es). Short = first 60 characters,
long = first 1,000. Needs `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def samples(root: Path) -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO / "src"))
    from llmctl.formats import documents

    out = []
    for doc in documents.read(documents.expand([root])):
        if isinstance(doc, documents.Malformed) or "spamassassin" in doc.id:
            continue  # mails mix languages and markup: no reliable label
        lang = doc.meta.get("lang", "en")
        text = " ".join(doc.text.split())
        if len(text) >= 200:
            out.append((lang, text))
    return out


def detectors():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    yield "py3langid", lambda t: ident.classify(t)[0]
    try:
        from lingua import LanguageDetectorBuilder

        det = LanguageDetectorBuilder.from_all_languages().build()

        def lingua_detect(t: str) -> str:
            lang = det.detect_language_of(t)
            return lang.iso_code_639_1.name.lower() if lang else "und"

        yield "lingua", lingua_detect
    except ImportError:
        print("lingua not installed: skipped")
    try:
        import pycld2

        def cld2(t: str) -> str:
            try:
                return pycld2.detect(t)[2][0][1]
            except pycld2.error:
                return "und"

        yield "pycld2", cld2
    except ImportError:
        print("pycld2 not installed: skipped")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    args = ap.parse_args()
    data = samples(args.corpus)
    counts = {lang: sum(1 for x, _ in data if x == lang) for lang in sorted({x for x, _ in data})}
    print(f"{len(data)} labelled texts: {counts}")
    print(f"\n{'detector':<12}{'acc short':>10}{'acc long':>10}{'texts/s short':>15}{'texts/s long':>14}")
    for name, fn in detectors():
        row = []
        for n_chars in (60, 1000):
            texts = [(lang, t[:n_chars]) for lang, t in data]
            t0 = time.perf_counter()
            right = sum(fn(t) == lang for lang, t in texts)
            dt = time.perf_counter() - t0
            row.append((right / len(texts), len(texts) / dt))
        print(f"{name:<12}{row[0][0]:>10.3f}{row[1][0]:>10.3f}{row[0][1]:>15.0f}{row[1][1]:>14.0f}")


if __name__ == "__main__":
    main()
