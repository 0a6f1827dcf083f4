"""clean vs datatrove: throughput and keep/drop agreement on the Gopher + C4 rules.

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # ~60 MB of real text
    python bench/clean_bench.py /tmp/benchsrc --workers 2
    python bench/clean_bench.py /tmp/benchsrc --no-datatrove --defaults-from /tmp/old/src --defaults-from src

Both tools read the same JSONL shards and apply the same published rules with their paper
defaults, in the same order: Gopher quality -> Gopher repetition -> C4 quality. datatrove runs
GopherQualityFilter, GopherRepetitionFilter and C4QualityFilter (its English word tokenizer is
spaCy's) through LocalPipelineExecutor; llmctl runs `llmctl clean` with
recipes/clean/datatrove-gopher-c4.yaml (word_tokenizer: spacy, so the same words and sentences).
Times are end to end (read, filter, write): wall seconds, and CPU seconds of the whole process
tree (the fair figure on a shared machine). Needs `pip install -e ".[bench]"`.

Disagreements are counted by the rule that dropped the document on each side ("kept" where it
was not dropped), so a difference points at one rule. datatrove takes minutes on the full corpus:
--datatrove-decisions FILE saves its per-document decisions (and times) the first time and reads
them back afterwards, so llmctl can be iterated against one datatrove run; --disagreements FILE
writes every differing document's id and both decisions.

    python bench/clean_bench.py /tmp/benchsrc --datatrove-decisions /tmp/dt.jsonl \\
        --disagreements /tmp/diff.jsonl
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
RECIPE = REPO / "recipes/clean/datatrove-gopher-c4.yaml"


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


def measured(cmd: list[str], name: str, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak memory in MB of the whole process tree) of cmd.

    CPU is user + system time of the command and its descendants: getrusage(RUSAGE_CHILDREN)
    around the run counts those that were waited for (llmctl's pool workers); workers a tool
    leaves unreaped (datatrove's) are not in it, so the last CPU time psutil saw for each process
    of the tree is summed too, and the larger figure is kept (the sampled one misses <= 0.25 s a
    process). Sampling every 50 ms cost this process as much CPU as a datatrove worker got on a
    loaded machine (reading smaps is not free), which slowed the run it measures.

    getrusage's ru_maxrss misses pool workers that a tool tears down itself, so the tree is
    walked with psutil: the peak of the summed PSS (proportional set size: pages shared by
    forked workers count once) of the command and all its descendants.
    """
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    cpu_seen: dict[int, float] = {}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
            for p in tree:
                t = p.cpu_times()
                cpu_seen[p.pid] = t.user + t.system
        except psutil.Error:
            pass
        time.sleep(0.25)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(cpu, sum(cpu_seen.values()))
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr.read()[-3000:]}")
    return seconds, cpu, peak / 2**20


Decisions = dict[str, str]
"""document id -> "kept" or the rule that dropped it ("c4_too_few_sentences", "gopher_short_doc", ...)"""

# datatrove's reason names -> llmctl's, where they differ (the same rules)
_DT_REASONS = {
    "gopher_below_avg_threshold": "gopher_below_avg_word_length",
    "gopher_above_avg_threshold": "gopher_above_avg_word_length",
    "gopher_below_alpha_threshold": "gopher_below_alpha_words_ratio",
    "gopher_enough_stop_words": "gopher_few_stop_words",
    "lorem_ipsum": "c4_lorem_ipsum",
    "curly_bracket": "c4_curly_bracket",
    "too_few_sentences": "c4_too_few_sentences",
}


def run_datatrove(inp: Path, work: Path, workers: int) -> tuple[float, float, Decisions, float]:
    """datatrove's pipeline; every filter writes what it drops (with its reason) to a folder of its own."""
    code = f"""
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter
from datatrove.pipeline.writers import JsonlWriter
def dropped(name):
    return JsonlWriter("{work}/dt-dropped/" + name, compression=None)
LocalPipelineExecutor(
    pipeline=[JsonlReader("{inp}"), GopherQualityFilter(exclusion_writer=dropped("quality")),
              GopherRepetitionFilter(exclusion_writer=dropped("repetition")),
              C4QualityFilter(exclusion_writer=dropped("c4")),
              JsonlWriter("{work}/dt-out", compression=None)],
    tasks={workers}, workers={workers}, logging_dir="{work}/dt-logs",
).run()
"""
    seconds, cpu, rss = measured([sys.executable, "-c", code], "datatrove")
    decisions: Decisions = {}
    for f in (work / "dt-out").glob("*.jsonl"):
        for line in f.open():
            decisions[json.loads(line)["id"]] = "kept"
    for f in (work / "dt-dropped").glob("*/*.jsonl"):
        for line in f.open():
            rec = json.loads(line)
            reason = rec.get("metadata", {}).get("filter_reason", "dropped")
            decisions[rec["id"]] = _DT_REASONS.get(reason, reason)
    return seconds, cpu, decisions, rss


def datatrove_decisions(
    inp: Path, work: Path, workers: int, saved: Path | None
) -> tuple[float, float, Decisions, float]:
    """run_datatrove, or its decisions and times read back from saved (written there when absent)."""
    if saved is not None and saved.exists():
        with saved.open() as f:
            head = json.loads(f.readline())
            decisions = {r["id"]: r["decision"] for r in map(json.loads, f)}
        return head["seconds"], head["cpu"], decisions, head["peak_pss_mb"]
    seconds, cpu, decisions, rss = run_datatrove(inp, work, workers)
    if saved is not None:
        with saved.open("w") as f:
            f.write(json.dumps({"seconds": seconds, "cpu": cpu, "peak_pss_mb": rss}) + "\n")
            for i, d in sorted(decisions.items()):
                f.write(json.dumps({"id": i, "decision": d}) + "\n")
    return seconds, cpu, decisions, rss


def run_llmctl(
    inp: Path, work: Path, workers: int, recipe: Path | None, src: Path = REPO / "src"
) -> tuple[float, float, Decisions, float]:
    """`llmctl clean` with a recipe (None: the built-in defaults) from the checkout at src."""
    sys.path.insert(0, str(REPO / "src"))
    from llmctl.formats.documents import read_shards

    out = work / f"llmctl-out-{len(list(work.glob('llmctl-out-*')))}"
    cmd = [sys.executable, "-m", "llmctl.cli", "clean", str(inp), "--out", str(out), "--quiet"]
    cmd += ["--workers", str(workers)] + (["--config", str(recipe)] if recipe else [])
    # src first; the rest of PYTHONPATH stays (where spaCy may be installed, e.g. a --target dir)
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    seconds, cpu, rss = measured(cmd, "llmctl", env={**os.environ, "PYTHONPATH": path})
    decisions = {x["id"]: "kept" for x in read_shards(out / "data")}
    decisions.update((x["id"], x["reason"]) for x in read_shards(out / "rejected"))
    return seconds, cpu, decisions, rss


def compare(dt: Decisions, ll: Decisions, out: Path | None) -> None:
    """Agreement on keep/drop, and the differing documents counted by the rule on each side."""
    from collections import Counter

    ids = sorted(dt.keys() | ll.keys())
    differ = [i for i in ids if (dt.get(i) == "kept") != (ll.get(i) == "kept")]
    only_dt = sum(dt.get(i) == "kept" for i in differ)
    print(
        f"keep/drop agreement: {(1 - len(differ) / len(ids)) * 100:.2f}% ({len(differ)} of {len(ids):,} "
        f"documents differ: {only_dt} kept only by datatrove, {len(differ) - only_dt} only by llmctl)"
    )
    pairs = Counter((dt.get(i, "missing"), ll.get(i, "missing")) for i in differ)
    print(f"\n{'datatrove':<34}{'llmctl':<34}{'docs':>6}")
    for (a, b), k in pairs.most_common():
        print(f"{a:<34}{b:<34}{k:>6}")
    if out is not None:
        with out.open("w") as f:
            for i in differ:
                f.write(json.dumps({"id": i, "datatrove": dt.get(i), "llmctl": ll.get(i)}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="documents in any format llmctl clean reads")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--recipe", type=Path, default=RECIPE, help="the llmctl recipe compared (default: %(default)s)"
    )
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
    ap.add_argument(
        "--datatrove-decisions",
        type=Path,
        metavar="FILE",
        help="datatrove's per-document decisions and times: read from FILE when it exists, else "
        "written there after running datatrove (to iterate on llmctl against one datatrove run)",
    )
    ap.add_argument(
        "--disagreements", type=Path, metavar="FILE", help="write the differing documents (JSON Lines)"
    )
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
            dt_s, dt_cpu, dt, dt_rss = datatrove_decisions(inp, work, args.workers, args.datatrove_decisions)
            rows.append(("datatrove", dt_s, dt_cpu, sum(d == "kept" for d in dt.values()), dt_rss))
        if not args.no_datatrove or not args.defaults_from:
            ll_s, ll_cpu, ll, ll_rss = run_llmctl(inp, work, args.workers, args.recipe)
            kept = sum(d == "kept" for d in ll.values())
            rows.append((f"llmctl {args.recipe.stem}", ll_s, ll_cpu, kept, ll_rss))
        for src in args.defaults_from:
            s, cpu, dec, rss = run_llmctl(inp, work, args.workers, None, src.resolve())
            rows.append((f"llmctl defaults ({src})", s, cpu, sum(d == "kept" for d in dec.values()), rss))
        width = max(len(r[0]) for r in rows) + 2
        print(
            f"\n{'tool':<{width}}{'seconds':>10}{'CPU s':>9}{'docs/CPU-s':>12}{'MB/s':>8}{'kept':>8}"
            f"{'peak PSS MB':>13}"
        )
        for name, s, cpu, k, rss in rows:
            mb_s = size / 1e6 / s
            print(f"{name:<{width}}{s:>10.1f}{cpu:>9.1f}{n / cpu:>12.0f}{mb_s:>8.2f}{k:>8}{rss:>13.0f}")
        if args.no_datatrove:
            return
        print(f"\nthroughput ratio llmctl/datatrove: {dt_s / ll_s:.2f}x (CPU: {dt_cpu / ll_cpu:.2f}x)")
        compare(dt, ll, args.disagreements)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
