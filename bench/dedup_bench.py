"""dedup vs datatrove's MinHash pipeline: throughput, peak memory, precision and recall.

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full
    python bench/dedup_bench.py /tmp/benchsrc --docs 100000 --workers 2
    python bench/dedup_bench.py /tmp/benchsrc --skip-datatrove --all-steps   # + lines and n-gram index

The corpus: real text (State of the Union, raw SpamAssassin mails, Python docs, fortunes) cut
into documents of 20-100 words at line boundaries, then 5% of them copied with word edits at
known rates (0, 1, 2, 5, 10% of words). Both tools use 5-word shingles and the same LSH
bands x rows (datasketch's optimum for Jaccard 0.8 at 128 permutations); llmctl runs exact +
near-duplicate removal only (no line or contamination step; --all-steps turns on the boilerplate
lines and the 13-gram index too, and the table of llmctl's steps shows what they cost). Recall:
planted pairs whose exact Jaccard >= 0.8 that a tool puts in one cluster. Precision: a sample of
each tool's predicted pairs whose exact Jaccard >= 0.8. Needs `pip install -e ".[bench]"`
(datatrove, spaCy, xxhash).
text-dedup is not compared: its requirements (pyspark, rich<14, urllib3<=2.0) conflict with ours.
datatrove runs its sha1 shingle hash: its default xxhash path fails with xxhash 3.7 (str input).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from clean_bench import measured  # noqa: E402

from llmctl.dedup.config import MinHashConfig  # noqa: E402
from llmctl.dedup.lsh import lsh_params  # noqa: E402
from llmctl.formats import documents  # noqa: E402
from llmctl.formats.ngrams import words  # noqa: E402

RATES = [0.0, 0.01, 0.02, 0.05, 0.10]


def build(
    src: Path, out: Path, n_docs: int, n_files: int, seed: int = 0
) -> tuple[int, list[tuple[str, str, float]]]:
    """Write the corpus; return (documents, planted (original id, copy id, rate))."""
    rng = random.Random(seed)
    chunks: list[str] = []
    for doc in documents.read(documents.expand([src])):
        if isinstance(doc, documents.Malformed):
            continue
        lines, size = [], 0
        for line in doc.text.splitlines():
            lines.append(line)
            size += len(line.split())
            if size >= rng.randint(20, 100):
                chunks.append("\n".join(lines))
                lines, size = [], 0
        if size >= 20:
            chunks.append("\n".join(lines))
    rng.shuffle(chunks)
    if len(chunks) < n_docs:
        raise SystemExit(f"the corpus gives only {len(chunks):,} documents; ask for fewer with --docs")
    base = chunks[:n_docs]
    vocab = sorted({w for c in base[:2000] for w in c.split()})
    docs = [{"id": f"d{i:06d}", "text": t} for i, t in enumerate(base)]
    planted = []
    for j, i in enumerate(rng.sample(range(len(base)), n_docs // 20)):  # 5% planted copies
        rate = RATES[j % len(RATES)]
        ws = base[i].split(" ")
        for k in rng.sample(range(len(ws)), round(rate * len(ws))):
            ws[k] = rng.choice(vocab)
        copy_id = f"p{j:06d}"
        docs.append({"id": copy_id, "text": " ".join(ws)})
        planted.append((f"d{i:06d}", copy_id, rate))
    rng.shuffle(docs)
    out.mkdir(parents=True)
    files = [open(out / f"part-{k:02d}.jsonl", "w", encoding="utf-8") for k in range(n_files)]
    for k, d in enumerate(docs):
        files[k % n_files].write(json.dumps(d, ensure_ascii=False) + "\n")
    for f in files:
        f.close()
    return len(docs), planted


def run_datatrove(
    inp: Path, work: Path, workers: int, bands: int, rows: int
) -> tuple[float, float, float, dict[str, str]]:
    code = f"""
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
    MinhashDedupCluster, MinhashDedupFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
# datatrove's default xxhash path passes str to xxhash, which xxhash 3.7 rejects: use its sha1 path
cfg = MinhashConfig(n_grams=5, num_buckets={bands}, hashes_per_bucket={rows},
                    hash_config=HashConfig(hash_fc="sha1"))
w = "{work}"
n = len(list(__import__("pathlib").Path("{inp}").glob("*.jsonl")))
LocalPipelineExecutor([JsonlReader("{inp}"), MinhashDedupSignature(output_folder=w + "/sigs", config=cfg)],
                      tasks=n, workers={workers}, logging_dir=w + "/l1").run()
LocalPipelineExecutor([MinhashDedupBuckets(input_folder=w + "/sigs", output_folder=w + "/buckets",
                                           config=cfg)],
                      tasks=cfg.num_buckets, workers={workers}, logging_dir=w + "/l2").run()
LocalPipelineExecutor([MinhashDedupCluster(input_folder=w + "/buckets", output_folder=w + "/remove",
                                           config=cfg, save_cluster_id=True)],
                      tasks=1, logging_dir=w + "/l3").run()
LocalPipelineExecutor([JsonlReader("{inp}"),
                       MinhashDedupFilter(input_folder=w + "/remove", load_cluster_ids=True,
                                          exclusion_writer=JsonlWriter(w + "/removed", compression=None)),
                       JsonlWriter(w + "/kept", compression=None)],
                      tasks=n, workers={workers}, logging_dir=w + "/l4").run()
"""
    seconds, cpu, rss = measured([sys.executable, "-c", code], "datatrove")
    cluster = {}
    for sub in ("kept", "removed"):
        for f in (work / sub).glob("*.jsonl"):
            for line in f.open():
                r = json.loads(line)
                cid = r["metadata"].get("minhash_cluster_id", -1)
                cluster[r["id"]] = f"c{cid}" if cid != -1 else r["id"]
    return seconds, cpu, rss, cluster


def run_llmctl(
    inp: Path, work: Path, workers: int, bands: int, rows: int, extra: list[str]
) -> tuple[float, float, float, dict[str, str], dict[str, dict[str, float]]]:
    """(wall, CPU, peak MB, document -> cluster, the manifest's per-step wall and CPU seconds)."""
    out = work / "llmctl-out"
    cmd = [
        sys.executable,
        "-m",
        "llmctl.cli",
        "dedup",
        str(inp),
        "--out",
        str(out),
        "--quiet",
        "--workers",
        str(workers),
        "--set",
        "lines.enabled=false",
        "--set",
        "contamination.index=false",
        "--set",
        f"minhash.bands={bands}",
        "--set",
        f"minhash.rows={rows}",
    ]
    for item in extra:
        cmd += ["--set", item]
    seconds, cpu, rss = measured(cmd, "llmctl")
    cluster = {r["id"]: r["id"] for r in documents.read_shards(out / "data")}
    for r in documents.read_shards(out / "rejected"):
        cluster[r["id"]] = r["meta"].get("duplicate_of", r["id"])
    steps = json.loads((out / "manifest.json").read_text())["metrics"].get("step_seconds", {})
    return seconds, cpu, rss, cluster, steps


def print_steps(steps: dict[str, dict[str, float]], wall: float, cpu: float) -> None:
    """llmctl's steps (from its manifest): wall and CPU seconds, and each one's share of the
    command's; 'other' is the rest of the command (interpreter start, imports, artifact setup)."""
    rest = {k: t - sum(v[k] for v in steps.values()) for k, t in (("wall", wall), ("cpu", cpu))}
    rows = {**steps, "other": rest}
    print(f"\n{'llmctl step':<14}{'wall s':>9}{'CPU s':>9}{'CPU share':>11}")
    for name, v in rows.items():
        print(f"{name:<14}{v['wall']:>9.1f}{v['cpu']:>9.1f}{v['cpu'] / max(cpu, 1e-9):>11.1%}")
    print(f"{'command':<14}{wall:>9.1f}{cpu:>9.1f}")


def shingles(text: str) -> set[tuple[str, ...]]:
    ws = words(text)
    return {tuple(ws[i : i + 5]) for i in range(max(1, len(ws) - 4))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def score(cluster: dict[str, str], text: dict[str, str], planted, rng: random.Random, sample: int = 20000):
    true_planted = [(a, b) for a, b, _ in planted if jaccard(shingles(text[a]), shingles(text[b])) >= 0.8]
    recall = sum(cluster[a] == cluster[b] for a, b in true_planted) / max(1, len(true_planted))
    groups: dict[str, list[str]] = {}
    for doc, c in cluster.items():
        groups.setdefault(c, []).append(doc)
    pairs = [p for g in groups.values() if len(g) > 1 for p in itertools.combinations(g, 2)]
    picked = rng.sample(pairs, min(sample, len(pairs)))
    precision = sum(jaccard(shingles(text[a]), shingles(text[b])) >= 0.8 for a, b in picked) / max(
        1, len(picked)
    )
    return recall, precision, len(pairs), len(true_planted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--skip-datatrove", action="store_true", help="llmctl only (quick experiments)")
    ap.add_argument(
        "--all-steps", action="store_true", help="llmctl also removes boilerplate lines and writes its index"
    )
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra llmctl --set KEY=VALUE")
    args = ap.parse_args()
    bands, rows = lsh_params(MinHashConfig())
    work = Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    try:
        n, planted = build(args.corpus, work / "input", args.docs, args.files)
        text = {
            json.loads(x)["id"]: json.loads(x)["text"]
            for f in (work / "input").glob("*.jsonl")
            for x in f.open()
        }
        mb = sum(len(t.encode()) for t in text.values()) / 1e6
        print(
            f"corpus: {n:,} documents ({len(planted):,} planted copies), {mb:.1f} MB, 5-word shingles, "
            f"LSH {bands} bands x {rows} rows, {args.workers} workers"
        )
        runs = {}
        if not args.skip_datatrove:
            runs["datatrove"] = run_datatrove(work / "input", work / "dt", args.workers, bands, rows)
        every = ["lines.enabled=true", "contamination.index=true"] if args.all_steps else []
        *llmctl, steps = run_llmctl(work / "input", work, args.workers, bands, rows, every + args.sets)
        runs["llmctl"] = tuple(llmctl)
        header = f"{'tool':<12}{'seconds':>9}{'CPU s':>8}{'docs/s':>9}{'peak PSS MB':>13}{'recall':>8}"
        print(f"\n{header}{'precision':>11}{'pairs':>10}")
        for name, (s, cpu, rss, cluster) in runs.items():
            r, p, npairs, ntrue = score(cluster, text, planted, random.Random(1))
            print(f"{name:<12}{s:>9.1f}{cpu:>8.1f}{n / s:>9.0f}{rss:>13.0f}{r:>8.3f}{p:>11.3f}{npairs:>10,}")
        print(f"\nplanted pairs with exact Jaccard >= 0.8: {ntrue:,}")
        print_steps(steps, *runs["llmctl"][:2])
        if len(runs) < 2:
            return
        dt, ll = runs["datatrove"], runs["llmctl"]
        print(f"throughput llmctl/datatrove: {dt[0] / ll[0]:.2f}x; ", end="")
        print(f"peak memory llmctl/datatrove: {ll[2] / dt[2]:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
