"""Build the shipped truthfulness and harmlessness tasks from the openai `evals` registry (MIT).

    pip download --no-deps evals==3.0.1.post1 -d /tmp/evalspkg
    python scripts/make_eval_align_tasks.py /tmp/evalspkg/evals-3.0.1.post1-py3-none-any.whl

Both sets are outside the exceptions that the package's LICENSE.md lists (text_compression,
steganography, schelling_point, ballots, sandbagging, theory_of_mind, already_said_that), so the
MIT licence (Copyright (c) 2023 OpenAI) applies; the task YAMLs record source and licence.

truthful-unsolvable.jsonl <- evals/registry/data/unsolvable_questions/samples.jsonl (300 items):
  a question and a passage; is the question answerable from the passage alone? (honesty: not
  inventing an answer the context does not give). True answers: the right label in both spellings
  (the source's "Solveable"/"Unsolveable" and "Solvable"/"Unsolvable"); false: the other label.
  Shuffled with a fixed seed (the source lists all unsolvable questions first).
harmless-safety.jsonl <- evals/registry/data/human-safety/human-safety.jsonl (15 items): a story
  with numbered endings for an AI's action; the true answer is the ending the source marks right
  (the one that harms no human), the false answers the other endings.
"""

from __future__ import annotations

import json
import random
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "llmctl" / "eval" / "tasks_data"
DATA = "evals/registry/data/"
# an ending's marker: "1:", "2.", "A.", "Ending 1:", "Choice 2." after a space, comma or the start
MARKER = re.compile(r"(?:^|(?<=[\s,]))(?:Ending |Choice )?([1-3A-C])[:.](?=\s)")


def rows(wheel: zipfile.ZipFile, name: str) -> list[dict]:
    text = wheel.read(DATA + name).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def unsolvable(wheel: zipfile.ZipFile) -> list[dict]:
    """The source lists its 150 unsolvable questions first: shuffled (seeded) so that --limit N
    takes both kinds."""
    out = []
    for r in rows(wheel, "unsolvable_questions/samples.jsonl"):
        user = r["input"][-1]["content"]
        m = re.match(r"\s*Question:\s*(.*?)\s*\n\s*Context:\s*(.*)\Z", user, re.S)
        assert m, user[:200]
        solvable = r["ideal"] == "Solveable"
        assert solvable or r["ideal"] == "Unsolveable", r["ideal"]
        yes, no = ["Solvable", "Solveable"], ["Unsolvable", "Unsolveable"]
        true, false = (yes, no) if solvable else (no, yes)
        out.append({"question": m.group(1), "context": m.group(2).strip(), "true": true, "false": false})
    random.Random(20).shuffle(out)
    return out


def human_safety(wheel: zipfile.ZipFile) -> list[dict]:
    out = []
    for r in rows(wheel, "human-safety/human-safety.jsonl"):
        text = r["input"][-1]["content"].strip()
        marks = list(MARKER.finditer(text))
        ends = [m.start() for m in marks[1:]] + [len(text)]
        endings = {m.group(1): text[m.end() : e].strip(" ,.\n") for m, e in zip(marks, ends, strict=True)}
        right = re.search(r"\[(\w)\]", r["ideal"]).group(1)  # "the final answer is [3]"
        assert len(endings) == len(marks) >= 2 and right in endings, (text, endings, right)
        story = re.sub(r"^Story:\s*", "", text[: marks[0].start()]).strip()
        story = re.sub(r"\s*Options:$", "", story)
        true = [endings[right]]
        false = [e for k, e in sorted(endings.items()) if k != right]
        out.append({"story": story, "true": true, "false": false})
    return out


def write(name: str, items: list[dict]) -> None:
    path = OUT / f"{name}.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items), encoding="utf-8")
    print(f"{path}: {len(items)} items")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        license_md = next(n for n in wheel.namelist() if n.endswith(".dist-info/LICENSE.md"))
        assert wheel.read(license_md).decode().startswith("MIT License")
        write("truthful-unsolvable", unsolvable(wheel))
        write("harmless-safety", human_safety(wheel))


if __name__ == "__main__":
    main()
