"""tokenize end to end vs its anchors: `tokenizers` train + encode_batch, and encode_batch alone.

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # ~73 MB of real text
    python bench/tokenize_bench.py /tmp/benchsrc                          # train + encode (issue 23)
    python bench/tokenize_bench.py /tmp/benchsrc --encode                 # the encode ceiling too

Train + encode (the default): the anchor is one Python process that reads the JSONL, trains a
byte-level BPE (the same trainer settings as llmctl) on the first `--sample-mb` MB of text and
`encode_batch`es every document in batches of 512 with tokenizers' own threads (all cores);
llmctl is the whole `llmctl tokenize` command with the same vocabulary and sample size (read,
train, save for tokenizers and transformers, encode in worker processes, write megatron-core
.bin/.idx, hash the outputs, manifest). Runs alternate, `--runs` of each. Every row reports wall
seconds, CPU seconds of the whole process tree (user + sys, workers included) and the peak RSS
of the tree (the sum over the processes alive at once, polled every 20 ms): the machine may be
shared, so CPU seconds are the steadier measure.

`--encode` adds the older comparison: a tokenizer trained once (not timed), then
`Tokenizer.encode_batch` over texts already in memory (the ceiling) against
`llmctl tokenize --tokenizer ...`, on 1 core (taskset) and on all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from llmctl.formats import documents  # noqa: E402

# the anchor: tokenizers alone, with llmctl's byte-level BPE settings (tokenize/tokenizer.py)
ANCHOR = """
import json, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
path, vocab, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
def sample():
    used = 0
    for t in texts:
        yield t
        used += len(t.encode("utf-8", errors="surrogatepass"))
        if used >= budget:
            return
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=vocab, min_frequency=2,
    special_tokens=["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
)
tok.train_from_iterator(sample(), trainer=trainer)
n = 0
for i in range(0, len(texts), 512):
    n += sum(len(e.ids) for e in tok.encode_batch(texts[i : i + 512], add_special_tokens=False))
print(n + len(texts))
"""

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


def measure(cmd: list[str]) -> tuple[str, float, float, int]:
    """Run `cmd`: (stdout, wall s, CPU s of the process tree, peak tree RSS in bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = psutil.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        peak = 0
        while proc.poll() is None:
            rss = 0
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    rss += p.memory_info().rss
            except psutil.Error:  # a process ended between listing and reading
                pass
            peak = max(peak, rss)
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:4]} failed:\n{err.read().decode()[-3000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return out.read().decode(), wall, cpu, peak


def llmctl(inp: Path, dest: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "llmctl.cli", "tokenize", str(inp), "--out", str(dest), "--quiet", *args]


def train_encode(
    inp: Path, work: Path, vocab: int, sample_bytes: int, runs: int, outputs: Path | None
) -> None:
    rows: dict[str, list[tuple[float, float, int]]] = {"anchor": [], "llmctl": []}
    tokens: dict[str, int] = {}
    for i in range(runs):
        out, wall, cpu, rss = measure([sys.executable, "-c", ANCHOR, str(inp), str(vocab), str(sample_bytes)])
        tokens["anchor"] = int(out.split()[-1])
        rows["anchor"].append((wall, cpu, rss))
        dest = work / f"trained-{i}"
        sets = ["--set", f"tokenizer.vocab_size={vocab}", "--set", f"tokenizer.sample_bytes={sample_bytes}"]
        _, wall, cpu, rss = measure(llmctl(inp, dest, *sets))
        manifest = json.loads((dest / "manifest.json").read_text())
        tokens["llmctl"] = manifest["metrics"]["tokens"]
        rows["llmctl"].append((wall, cpu, rss))
        if outputs is not None:  # path, bytes and sha256 of every output file, to compare versions
            outputs.write_text(json.dumps(manifest["outputs"], indent=1) + "\n")
        shutil.rmtree(dest)
    print(
        f"\ntrain a {vocab:,} BPE on {sample_bytes / 1e6:.0f} MB + encode all "
        f"(tokens: anchor {tokens['anchor']:,}, llmctl {tokens['llmctl']:,})"
    )
    print(f"{'':<8}{'wall s':>16}{'CPU s':>16}{'tree RSS MB':>16}")
    for who, rs in rows.items():
        cells = [" / ".join(f"{r[k]:.1f}" for r in rs) for k in (0, 1)]
        cells.append(" / ".join(f"{r[2] / 1e6:.0f}" for r in rs))
        print(f"{who:<8}" + "".join(f"{c:>16}" for c in cells))
    best = {who: [min(r[k] for r in rs) for k in range(3)] for who, rs in rows.items()}
    a, m = best["anchor"], best["llmctl"]
    print(
        f"llmctl throughput / anchor's (best of runs): wall x{a[0] / m[0]:.2f}, CPU x{a[1] / m[1]:.2f}; "
        f"tree RSS x{m[2] / a[2]:.2f} of the anchor's"
    )


def encode_ceiling(inp: Path, work: Path) -> None:
    py = sys.executable
    sets = ["--set", "tokenizer.vocab_size=32000", "--set", "tokenizer.sample_bytes=30000000"]
    measure(llmctl(inp, work / "trained", *sets))
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
        rows.append((label, "encode_batch in memory (ceiling)", ceiling, 1.0))
        for workers in (1, 2) if not pin else (1,):
            dest = work / f"out-{label[0]}-{workers}"
            given = ["--tokenizer", str(tok_dir), "--workers", str(workers)]
            _, wall, _, _ = measure([*pin, *llmctl(inp, dest, *given)])
            m = json.loads((dest / "manifest.json").read_text())["metrics"]
            assert m["tokens"] == tokens, (m["tokens"], tokens)
            rate = m["tokens_per_s"]  # read + encode + write, without interpreter start-up
            rows.append((label, f"llmctl tokenize, {workers} worker(s)", rate, rate / ceiling))
            whole = tokens / wall
            rows.append((label, "  same, whole command (imports, tokenizer save)", whole, whole / ceiling))
    print(f"\n{'cpus':<9}{'what':<50}{'tokens/s':>12}{'of ceiling':>12}")
    for label, what, rate, frac in rows:
        print(f"{label:<9}{what:<50}{rate:>12,.0f}{frac:>11.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--sample-mb", type=float, default=20, help="training sample, MB of text")
    ap.add_argument("--runs", type=int, default=2, help="runs of each, alternating")
    ap.add_argument("--encode", action="store_true", help="also the encode-only ceiling comparison")
    ap.add_argument("--outputs", type=Path, help="write the llmctl run's output files and sha256 here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
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
        train_encode(inp, work, args.vocab, int(args.sample_mb * 1e6), args.runs, args.outputs)
        if args.encode:
            encode_ceiling(inp, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
