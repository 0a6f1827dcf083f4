"""Builds the shipped instruction data from the `chitchat-dataset` package (MIT, BYU-PCCL:
7,168 human-human conversations of the Chit Chat Challenge).

    python scripts/make_sft_data.py --out data/sft/chitchat.jsonl.zst      # the demo's chat data
    python scripts/make_sft_data.py --out tests/assets/sft/chitchat-240.jsonl --limit 240
    python scripts/make_sft_data.py --tasks --out data/sft/chitchat-starters.jsonl.zst --limit 1000

Each conversation becomes `{"messages": [...], "meta": {...}}`: the speaker who opens is the
user, the other the assistant; a speaker's consecutive messages make one turn (joined by a
space). With --tasks the output is task rows instead, for a template (FLAN style):
`{"dialogue": "A: ...\nB: ...", "starter": "the question the workers were given to start"}`
(the Chit Chat Challenge gave each pair one of 35 conversation starters). Conversations are
sorted by id, so the output is the same on every run. Without the package installed:
`pip download --no-deps chitchat-dataset==0.9.0` and `--wheel FILE`.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import zstandard


def conversations(data: dict) -> list[dict]:
    out = []
    for cid in sorted(data):
        convo = data[cid]
        turns = [t for t in convo["messages"] if t]
        if len(turns) < 2:
            continue
        opener = turns[0][0]["sender"]
        messages = []
        for turn in turns:
            text = " ".join(m["text"].strip() for m in turn if m["text"].strip())
            role = "user" if turn[0]["sender"] == opener else "assistant"
            if not text:
                continue
            if messages and messages[-1]["role"] == role:  # two turns of one speaker in a row
                messages[-1]["content"] += " " + text
            else:
                messages.append({"role": role, "content": text})
        if any(m["role"] == "assistant" for m in messages):
            out.append({"messages": messages, "meta": {"id": cid, "source": "chitchat-dataset 0.9.0 (MIT)"}})
    return out


def starter_rows(data: dict, turns: int = 4) -> list[dict]:
    """Task rows: the first turns of a conversation, and the starter question it was given."""
    out = []
    for cid in sorted(data):
        convo = data[cid]
        if not convo.get("prompt"):
            continue
        chats = conversations({cid: convo})
        if not chats:
            continue
        msgs = chats[0]["messages"][:turns]
        dialogue = "\n".join(("A: " if m["role"] == "user" else "B: ") + m["content"] for m in msgs)
        out.append({"dialogue": dialogue, "starter": convo["prompt"], "meta": {"id": cid}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="first N conversations (by id)")
    ap.add_argument("--max-turns", type=int, default=8, help="keep the first N turns of a conversation")
    ap.add_argument("--tasks", action="store_true", help="task rows (dialogue -> starter) for a template")
    ap.add_argument("--wheel", type=Path, default=None, help="read dataset.json from this wheel")
    args = ap.parse_args()
    if args.wheel:
        with zipfile.ZipFile(args.wheel) as z:
            data = json.load(io.TextIOWrapper(z.open("chitchat_dataset/dataset.json"), encoding="utf-8"))
    else:
        import chitchat_dataset

        data = dict(chitchat_dataset.Dataset())
    rows = starter_rows(data)[: args.limit] if args.tasks else conversations(data)[: args.limit]
    for r in rows if not args.tasks else []:
        r["messages"] = r["messages"][: args.max_turns]
        while r["messages"][-1]["role"] != "assistant":
            r["messages"].pop()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".zst":
        text = zstandard.ZstdCompressor(level=19).compress(text)
    args.out.write_bytes(text)
    print(f"{args.out}: {len(rows)} {'task rows' if args.tasks else 'conversations'}, {len(text):,} bytes")


if __name__ == "__main__":
    main()
