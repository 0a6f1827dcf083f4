"""Rebuild data/rm/mc-pairs.jsonl.zst (preference pairs for `llmctl rm`) from the openai `evals`
wheel's registry data: multiple-choice questions with human-written wrong answers become pairs
whose chosen response is the correct option and whose rejected response is a wrong one.

    pip download --no-deps evals==3.0.1.post1 -d /tmp/evalspkg
    python scripts/make_rm_data.py /tmp/evalspkg/evals-3.0.1.post1-py3-none-any.whl \
        --out data/rm/mc-pairs.jsonl.zst --tiny tests/assets/rm/mc-pairs-48.jsonl

Sets (MIT, as the wheel's LICENSE.md: none of them is among its non-MIT datasets):
  fcc_amateur_extra      the FCC Amateur Extra question pool (written by the NCVEC question pool committee)
  cissp-study-questions  CISSP study questions written by an evals contributor
A question whose options refer to each other ("all of these", "none of the above", "both A and
B") or to a figure is skipped: without the option list in the prompt they mean nothing. The
prompt is the question alone (the options are the responses), one wrong option per question is
drawn with a fixed seed; the output is the same on every run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import zipfile
from pathlib import Path

import zstandard

SETS = {
    "fcc_amateur_extra": "evals/registry/data/fcc_amateur_extra/samples.jsonl",
    "cissp-study-questions": "evals/registry/data/cissp-study-questions/samples.jsonl",
}
PER_SET = {"fcc_amateur_extra": 400, "cissp-study-questions": 100}
OPTION = re.compile(r"^\s*([A-E])[.):]\s+(.+?)\s*$")
SELF_REFERENCE = re.compile(
    r"\b(all of (these|the above|the choices)|none of (these|the above|the choices)|both [a-e] and [a-e]|"
    r"answers? [a-e]\b|choices? [a-e]\b)",
    re.I,
)


def parse(sample: dict) -> tuple[str, dict[str, str], str] | None:
    """(question stem, {letter: option text}, correct letter), or None for an unusable sample."""
    user = [m["content"] for m in sample["input"] if m.get("role") == "user"]
    ideal = sample.get("ideal")
    ideal = ideal[0] if isinstance(ideal, list) and ideal else ideal
    if len(user) != 1 or not isinstance(ideal, str):
        return None
    stem, options = [], {}
    for line in user[0].splitlines():
        m = OPTION.match(line)
        if m:
            options[m.group(1)] = m.group(2)
        elif not options and line.strip() and line.strip() != "Answer:":
            stem.append(line.strip())
    letter = ideal.strip().strip("().")
    if letter not in options or len(options) < 2 or not stem:
        return None
    text = " ".join(stem)
    if "figure" in text.lower() or any(SELF_REFERENCE.search(o) for o in options.values()):
        return None
    return text, options, letter


def pairs(wheel: Path) -> list[dict]:
    rng = random.Random(20240611)
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name, member in SETS.items():
            rows = []
            for i, line in enumerate(z.read(member).decode("utf-8").splitlines(), 1):
                got = parse(json.loads(line))
                if got is None:
                    continue
                stem, options, letter = got
                wrong = sorted(k for k in options if k != letter and options[k] != options[letter])
                if not wrong:
                    continue
                rows.append(
                    {
                        "id": f"{name}:{i}",
                        "prompt": stem,
                        "chosen": options[letter],
                        "rejected": options[rng.choice(wrong)],
                        "source": name,
                    }
                )
            rng.shuffle(rows)
            out.extend(sorted(rows[: PER_SET[name]], key=lambda r: int(r["id"].rsplit(":", 1)[1])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="evals-3.0.1.post1-py3-none-any.whl")
    ap.add_argument("--out", type=Path, required=True, help="the .jsonl.zst to write")
    ap.add_argument("--tiny", type=Path, help="also write the first 24 pairs of each set here (.jsonl)")
    args = ap.parse_args()
    rows = pairs(args.wheel)
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    print(f"{args.out}: {len(rows)} pairs, {args.out.stat().st_size:,} bytes")
    if args.tiny:
        tiny = [r for name in SETS for r in [x for x in rows if x["source"] == name][:24]]
        args.tiny.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tiny))
        print(f"{args.tiny}: {len(tiny)} pairs")


if __name__ == "__main__":
    main()
