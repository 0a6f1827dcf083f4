"""clean vs datatrove: throughput and keep/drop agreement on the Gopher + C4 rules.

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # ~60 MB of real text
    python bench/clean_bench.py /tmp/benchsrc --workers 2
    python bench/clean_bench.py /tmp/benchsrc --no-datatrove --defaults-from /tmp/old/src --defaults-from src

Both tools read the same JSONL shards and apply the same published rules with their paper
defaults, in the same order: Gopher quality -> Gopher repetition -> C4 quality. datatrove runs
GopherQualityFilter, GopherRepetitionFilter and C4QualityFilter (its English word tokenizer is
spaCy's) through LocalPipelineExecutor; llmctl runs `llmctl clean` with recipes/clean/c4-strict.yaml.
Times are end to end (read, filter, write). Needs `pip install -e ".[bench]"`.
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


def prepare(src: Path, work: Path, n_files: int) -> tuple[Path, int, int]:
    """The corpus as n_files plain JSONL shards of {"id", "text"} (both tools read these)."""
    sys.path.insert(0, str(REPO / "src"))
    from llmctl.formats import documents

    out = work / "input"
    out.mkdir(parents=True)
    handles = [open(out / f"part-{i:02d}.jsonl", "w", encoding="utf-8") for i in range(n_files)]
    n = size = 0
    for doc in documents.read(documents.expand([src])):
        if isinstance(doc, documents.Malformed):
            continue
        handles[n % n_files].write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
        n += 1
        size += len(doc.text.encode())
    for h in handles:
        h.close()
    return out, n, size


def measured(cmd: list[str], name: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak memory in MB of the whole process tree) of cmd, sampled every 50 ms.

    getrusage's ru_maxrss misses pool workers that a tool tears down itself, so the tree is
    walked with psutil: the peak of the summed PSS (proportional set size: pages shared by
    forked workers count once) of the command and all its descendants.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr.read()[-3000:]}")
    return seconds, peak / 2**20


def run_datatrove(inp: Path, work: Path, workers: int) -> tuple[float, set[str], float]:
    code = f"""
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter
from datatrove.pipeline.writers import JsonlWriter
LocalPipelineExecutor(
    pipeline=[JsonlReader("{inp}"), GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
              JsonlWriter("{work}/dt-out", compression=None)],
    tasks={workers}, workers={workers}, logging_dir="{work}/dt-logs",
).run()
"""
    seconds, rss = measured([sys.executable, "-c", code], "datatrove")
    kept = set()
    for f in (work / "dt-out").glob("*.jsonl"):
        for line in f.open():
            kept.add(json.loads(line)["id"])
    return seconds, kept, rss


def run_llmctl(
    inp: Path, work: Path, workers: int, recipe: Path | None, src: Path = REPO / "src"
) -> tuple[float, set[str], float]:
    """`llmctl clean` with a recipe (None: the built-in defaults) from the checkout at src."""
    sys.path.insert(0, str(REPO / "src"))
    from llmctl.formats.documents import read_shards

    out = work / f"llmctl-out-{len(list(work.glob('llmctl-out-*')))}"
    cmd = [sys.executable, "-m", "llmctl.cli", "clean", str(inp), "--out", str(out), "--quiet"]
    cmd += ["--workers", str(workers)] + (["--config", str(recipe)] if recipe else [])
    seconds, rss = measured(cmd, "llmctl", env={**os.environ, "PYTHONPATH": str(src)})
    return seconds, {x["id"] for x in read_shards(out / "data")}, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="documents in any format llmctl clean reads")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--files", type=int, default=8, help="JSONL shards to split the corpus into")
    ap.add_argument(
        "--defaults-from",
        type=Path,
        action="append",
        default=[],
        metavar="SRC",
        help="also time `llmctl clean` with its built-in defaults from this checkout's src/ "
        "(repeat to compare two versions, e.g. a git worktree of the previous release)",
    )
    ap.add_argument("--no-datatrove", action="store_true", help="skip the anchor (datatrove not installed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clean-bench-"))
    try:
        inp, n, size = prepare(args.corpus, work, args.files)
        print(
            f"corpus: {n:,} documents, {size / 1e6:.1f} MB of text, {args.files} shards, "
            f"{args.workers} workers"
        )
        rows = []
        if not args.no_datatrove:
            dt_s, dt_kept, dt_rss = run_datatrove(inp, work, args.workers)
            rows.append(("datatrove", dt_s, len(dt_kept), dt_rss))
        ll_s, ll_kept, ll_rss = run_llmctl(inp, work, args.workers, REPO / "recipes/clean/c4-strict.yaml")
        rows.append(("llmctl c4-strict", ll_s, len(ll_kept), ll_rss))
        for src in args.defaults_from:
            s, kept, rss = run_llmctl(inp, work, args.workers, None, src.resolve())
            rows.append((f"llmctl defaults ({src})", s, len(kept), rss))
        width = max(len(r[0]) for r in rows) + 2
        print(f"\n{'tool':<{width}}{'seconds':>10}{'docs/s':>10}{'MB/s':>8}{'kept':>8}{'peak PSS MB':>13}")
        for name, s, k, rss in rows:
            print(f"{name:<{width}}{s:>10.1f}{n / s:>10.0f}{size / 1e6 / s:>8.2f}{k:>8}{rss:>13.0f}")
        if args.no_datatrove:
            return
        ids = {json.loads(line)["id"] for f in inp.glob("*.jsonl") for line in f.open()}
        agree = sum((i in dt_kept) == (i in ll_kept) for i in ids) / len(ids)
        print(f"\nthroughput ratio llmctl/datatrove: {dt_s / ll_s:.2f}x")
        print(
            f"keep/drop agreement: {agree * 100:.2f}% ({sum((i in dt_kept) != (i in ll_kept) for i in ids)} "
            f"of {len(ids):,} documents differ: {len(dt_kept - ll_kept)} kept only by datatrove, "
            f"{len(ll_kept - dt_kept)} only by llmctl)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
