"""tokenize end to end vs the ceiling: tokenizers' encode_batch on the same text in memory.

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # ~115 MB of real text
    python bench/tokenize_bench.py /tmp/benchsrc

A 32k byte-level BPE is trained once (not timed). Then, on 1 core (taskset) and on all cores:
the ceiling is `Tokenizer.encode_batch` over the texts already in memory, in batches of 512;
llmctl is `llmctl tokenize --tokenizer ...` end to end (read the JSONL, encode, append EOD,
write megatron-core .bin/.idx), with 1 worker process (tokenizers' own threads) and with one
process per core. Prints tokens/s and the ratio to the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from llmctl.formats import documents  # noqa: E402

CEILING = """
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
t0 = time.perf_counter()
n = 0
for i in range(0, len(texts), 512):
    n += sum(len(e.ids) for e in tok.encode_batch(texts[i : i + 512], add_special_tokens=False))
print(n + len(texts), time.perf_counter() - t0)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
    py = sys.executable
    try:
        inp = work / "input.jsonl"
        n = size = 0
        with open(inp, "w", encoding="utf-8") as f:
            for doc in documents.read(documents.expand([args.corpus])):
                if isinstance(doc, documents.Document) and doc.text:
                    f.write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
                    n += 1
                    size += len(doc.text.encode("utf-8", errors="surrogatepass"))
        print(f"corpus: {n:,} documents, {size / 1e6:.1f} MB of text")
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                py,
                "-m",
                "llmctl.cli",
                "tokenize",
                str(inp),
                "--out",
                str(work / "trained"),
                "--quiet",
                "--set",
                "tokenizer.vocab_size=32000",
                "--set",
                "tokenizer.sample_bytes=30000000",
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        print(f"trained a 32k byte-level BPE on 30 MB in {time.perf_counter() - t0:.0f}s (not timed below)")
        tok_dir = work / "trained" / "tokenizer"
        cores = len(os.sched_getaffinity(0))
        rows = []
        for label, pin in (("1 core", ["taskset", "-c", "0"]), (f"{cores} cores", [])):
            out = subprocess.run(
                [*pin, py, "-c", CEILING, str(tok_dir / "tokenizer.json"), str(inp)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            tokens, seconds = int(out[0]), float(out[1])
            ceiling = tokens / seconds
            rows.append((label, "encode_batch in memory (ceiling)", tokens / seconds, 1.0))
            for workers in (1, 2) if not pin else (1,):
                dest = work / f"out-{label[0]}-{workers}"
                t0 = time.perf_counter()
                r = subprocess.run(
                    [
                        *pin,
                        py,
                        "-m",
                        "llmctl.cli",
                        "tokenize",
                        str(inp),
                        "--out",
                        str(dest),
                        "--tokenizer",
                        str(tok_dir),
                        "--workers",
                        str(workers),
                        "--quiet",
                    ],
                    capture_output=True,
                    text=True,
                )
                wall = time.perf_counter() - t0
                assert r.returncode == 0, r.stderr
                m = json.loads((dest / "manifest.json").read_text())["metrics"]
                assert m["tokens"] == tokens, (m["tokens"], tokens)
                stage_rate = m["tokens_per_s"]  # read + encode + write, without interpreter start-up
                rows.append(
                    (label, f"llmctl tokenize, {workers} worker(s)", stage_rate, stage_rate / ceiling)
                )
                rows.append(
                    (
                        label,
                        "  same, whole command (imports, tokenizer save)",
                        tokens / wall,
                        tokens / wall / ceiling,
                    )
                )
        print(f"\n{'cpus':<9}{'what':<50}{'tokens/s':>12}{'of ceiling':>12}")
        for label, what, rate, frac in rows:
            print(f"{label:<9}{what:<50}{rate:>12,.0f}{frac:>11.0%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
