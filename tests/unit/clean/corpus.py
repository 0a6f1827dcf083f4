"""A corpus with one or more documents of every defect `clean` handles, and the expected reasons."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import zstandard

from llmctl.formats.documents import read_shards

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


def prose(n: int) -> list[str]:
    """n real English passages (~400 words, paragraphs of whole sentences) from the bundled
    State of the Union sample."""
    out: list[str] = []
    for rec in read_shards_file(SAMPLE / "sotu.jsonl.zst"):
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", rec["text"]) if s.endswith((".", "!", "?"))]
        passage: list[str] = []
        for s in sentences:
            passage.append(s)
            if sum(len(x.split()) for x in passage) >= 400:
                out.append("\n\n".join(" ".join(passage[i : i + 4]) for i in range(0, len(passage), 4)))
                passage = []
                if len(out) == n:
                    return out
    raise AssertionError("sample too small")


def read_shards_file(path: Path):
    with open(path, "rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    for line in data.splitlines():
        yield json.loads(line)


GERMAN = (
    "Die Bundesregierung hat am Mittwoch beschlossen, dass die Förderung für erneuerbare Energien in den "
    "kommenden Jahren deutlich ausgebaut werden soll. Nach Angaben des Ministeriums sollen dafür mehrere "
    "Milliarden Euro bereitgestellt werden, die vor allem in den Ausbau der Windkraft und der Solarenergie "
    "fließen. Kritiker bemängeln jedoch, dass die Maßnahmen zu spät kommen und der Ausbau der Netze nicht "
    "mit dem Tempo der neuen Anlagen Schritt halten kann. "
) * 3


# code pasted into prose: a dozen '{' in ~450 words is past max_curly_brackets_per_word (0.02)
CODE = "\n".join(f"int f{i}(int x) {{ if (x > {i}) {{ return x; }} return {i}; }}" for i in range(6))


def build(root: Path) -> dict[str, int]:
    """Write the defect corpus under root; return the expected count per reason (and 'kept')."""
    root.mkdir(parents=True, exist_ok=True)
    good = prose(8)
    recs = [
        {"id": "good-0", "text": good[0], "source": "sotu", "nested": {"a": [1, 2]}},
        {"id": "good-1", "text": good[1]},
        {
            "id": "pii",
            "text": good[2] + "\n\nWrite to jane.doe@example.com or call +1 202-555-0143 from 203.0.113.7.",
        },
        {"id": "short", "text": "Too short to be a document."},
        {"id": "german", "text": GERMAN},
        {
            "id": "repeated",
            "text": "\n".join(["Buy now and save big on every order today."] * 40 + [good[3]]),
        },
        {"id": "lorem", "text": good[4] + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."},
        {"id": "braces", "text": good[5] + "\n" + CODE},
        {"id": "spam-words", "text": good[6] + "\nviagra viagra online casino work from home viagra."},
        {"id": "domain", "text": good[7] + "\nMore at https://www.spam.example/offer today."},
        {"id": "empty", "text": "   \n\t  "},
        {"text": good[0].replace("the", "a"), "note": "no id"},  # id derived from file and line
    ]
    html = (
        "<!DOCTYPE html><html><head><title>t</title></head><body><nav><a href='/'>Home</a> | "
        "<a href='/about'>About</a></nav><article>"
        + "".join(f"<p>{p}</p>" for p in prose(10)[9].split("\n\n"))
        + "</article><footer>Copyright</footer></body></html>"
    )
    recs.append({"id": "html", "text": html})
    lines = [json.dumps(r) for r in recs]
    lines.insert(3, '{"id": "broken", "text": "unterminated')  # malformed JSON
    lines.insert(5, '{"id": "no-text", "body": "wrong field"}')  # missing text field
    lines.insert(7, "[1, 2, 3]")  # not an object
    data = "\n".join(lines).encode() + b"\n" + b'{"id": "bad-utf8", "text": "caf\xe9"}\n'
    (root / "a.jsonl").write_bytes(data)

    # compressed inputs: a good .gz, a truncated .gz, a truncated .zst, an empty file
    extra = prose(13)[10:13]
    with gzip.open(root / "b.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "gz-good", "text": extra[0]}) + "\n")
    # one record each, cut in the middle: no complete line survives, the stream error is the record
    full = gzip.compress((json.dumps({"id": "gz-cut", "text": extra[1]}) + "\n").encode())
    (root / "c.jsonl.gz").write_bytes(full[: len(full) // 2])
    z = zstandard.ZstdCompressor().compress((json.dumps({"id": "zst-cut", "text": extra[2]}) + "\n").encode())
    (root / "d.jsonl.zst").write_bytes(z[: len(z) // 2])
    (root / "e.jsonl").write_bytes(b"")
    txt = root / "txt"
    txt.mkdir()
    (txt / "doc.txt").write_text(prose(14)[13])
    return {
        "kept": 7,  # good-0, good-1, pii, no-id, html, gz-good, txt/doc.txt
        "malformed": 6,  # broken, no-text, not-object, bad-utf8, truncated gz, truncated zst
        "gopher_short_doc": 1,
        "language": 1,
        "dup_line_frac": 1,
        "c4_lorem_ipsum": 1,
        "c4_curly_bracket": 1,
        "blocked_keywords": 1,
        "blocked_domain": 1,
        "empty": 1,
    }


def kept_ids(out: Path) -> list[str]:
    return [r["id"] for r in read_shards(out / "data")]
