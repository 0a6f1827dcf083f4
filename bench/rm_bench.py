"""`llmctl rm` against a plain TRL RewardTrainer script: same model, pairs, split and hyper-parameters.

    .venv/bin/python bench/rm_bench.py            # the tiny chat model, synthetic pairs, 40 steps
    .venv/bin/python bench/rm_bench.py --model DIR --data prefs.jsonl --steps 60 --max-length 512

Both runs train on the same training pairs (the bench asks llmctl's data layer for them and for
the held-out prompts, then hands the lists to the plain script) with the same RewardConfig values
and seed. The plain script is what a TRL user writes: a datasets.Dataset of conversational
{prompt, chosen, rejected}, RewardConfig, RewardTrainer, train, evaluate on the held-out pairs.
Each run is its own process; the table shows training pairs/s (steps x batch over the train
runtime), the process's peak RSS, the held-out pairwise accuracy and the largest difference
between the logged losses (goal: overhead <= 5%, the same accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLAIN = r"""
import json, os, resource, sys, time
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1")
import datasets, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer
a = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(a["model"])
torch.manual_seed(a["seed"])
model = AutoModelForSequenceClassification.from_pretrained(a["model"], num_labels=1)
model.config.pad_token_id = tok.pad_token_id
args = RewardConfig(output_dir=a["out"], max_steps=a["steps"], per_device_train_batch_size=a["batch"],
    per_device_eval_batch_size=32, learning_rate=a["lr"], lr_scheduler_type="linear",
    warmup_steps=a["warmup"], logging_steps=1, save_strategy="no", seed=a["seed"], data_seed=a["seed"],
    max_length=a["max_length"], use_cpu=True, report_to=[], disable_tqdm=True, dataloader_num_workers=0,
    bf16=False, activation_checkpointing=False)  # TRL's defaults are on; the recipe: float32, no recompute
trainer = RewardTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(a["train"]),
    processing_class=tok)
held = datasets.Dataset.from_list(a["held"])
before = trainer.evaluate(held)["eval_accuracy"]  # as llmctl measures before training (warms up too)
out = trainer.train()
h = trainer.state.log_history
acc = trainer.evaluate(held)["eval_accuracy"]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"losses": [x["loss"] for x in h if "loss" in x], "seconds": out.metrics["train_runtime"],
    "before": before, "accuracy": acc, "peak_rss_mb": rss}))
"""

LLMCTL = r"""
import json, resource, runpy, sys
try:
    sys.argv = ["llmctl", *sys.argv[1:]]
    runpy.run_module("llmctl.cli", run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic(path: Path) -> Path:
    """The tests' learnable preference: an answer chosen, the same answer spelled backwards rejected."""
    rows = []
    for line in (REPO / "tests/assets/sft/chitchat-240.jsonl").read_text().splitlines():
        msgs = json.loads(line)["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        answer = next(m["content"] for m in msgs if m["role"] == "assistant")
        rows.append({"prompt": user, "chosen": answer, "rejected": " ".join(w[::-1] for w in answer.split())})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def split(model: Path, data: Path, recipe: dict, work: Path) -> tuple[list, list]:
    """The (train, held-out) pairs `llmctl rm` trains and measures on, as TRL conversational rows."""
    from llmctl import config as cfgmod
    from llmctl.rm import stage
    from llmctl.rm.config import RmConfig, add_prefs_args
    from llmctl.rm.data import split_by_prompt
    from llmctl.rm.scorer import render_ids

    cfg = cfgmod.load(RmConfig, None, [f"{k}={v}" for k, v in recipe.items()], {"model": str(model)})
    add_prefs_args(cfg, [f"prefs={data}"])
    tok = stage.prepare_tokenizer(model, cfg)
    pairs, _ = stage.read_sources(cfg, {"prefs": data}, work / "rejected")
    n = cfg.data.max_length
    fits = [
        p for p in pairs if max(len(render_ids(tok, p.prompt, r)[0]) for r in (p.chosen, p.rejected)) <= n
    ]
    train, held = split_by_prompt(fits, cfg.data.held_out, cfg.train.seed)
    rows = [
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in s] for s in (train, held)
    ]
    return rows[0], rows[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, default=None, help="HF model dir (default: the tests' tiny chat model)"
    )
    ap.add_argument(
        "--data", type=Path, default=None, help="preference pairs (default: the tests' synthetic)"
    )
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rm-bench-"))
    model = args.model
    if model is None:
        from tests.fixtures.models import tiny_chat_llama

        model = tiny_chat_llama(work / "model")
    data = args.data or synthetic(work / "pairs.jsonl")
    recipe = {
        "train.max_steps": args.steps, "train.batch_size": args.batch, "train.lr": args.lr,
        "train.warmup_ratio": 0.1, "train.schedule": "linear", "train.logging_steps": 1,
        "train.save_steps": 10**6, "train.seed": 1234, "data.max_length": args.max_length,
        "data.held_out": 16, "train.device": "cpu", "train.dtype": "float32",
    }  # fmt: skip
    train, held = split(model, data, recipe, work)
    spec = {
        "model": str(model), "out": str(work / "plain"), "steps": args.steps, "batch": args.batch,
        "lr": args.lr, "warmup": 0.1, "seed": 1234, "max_length": args.max_length,
        "train": train, "held": held,
    }  # fmt: skip
    (work / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}",
        "LLMCTL_QUIET": "1",
    }
    r = subprocess.run(
        [sys.executable, "-c", PLAIN, str(work / "spec.json")], capture_output=True, text=True, env=env
    )
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    plain = json.loads(r.stdout.strip().splitlines()[-1])
    sets = [x for k, v in recipe.items() for x in ("--set", f"{k}={v}")]
    cmd = [
        sys.executable,
        "-c",
        LLMCTL,
        "rm",
        str(model),
        f"prefs={data}",
        "--out",
        str(work / "llmctl"),
        *sets,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    rss = json.loads(r.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    m = json.loads((work / "llmctl" / "manifest.json").read_text())["metrics"]
    curve = [
        float(x.split(",")[1]) for x in (work / "llmctl" / "loss_curve.csv").read_text().splitlines()[1:]
    ]
    ours = {
        "seconds": m["train_runtime"],  # the trainer's own clock on both sides
        "losses": curve,
        "peak_rss_mb": rss,
        "accuracy": m["held_out_accuracy_after"],
    }
    diff = max(abs(a - b) for a, b in zip(plain["losses"], ours["losses"], strict=True))
    print(f"{'run':<10}{'steps':>7}{'pairs/s':>10}{'peak RSS MB':>13}{'final loss':>12}{'held-out acc':>14}")
    for name, x in (("plain TRL", plain), ("llmctl", ours)):
        pps = args.steps * args.batch / x["seconds"]
        print(
            f"{name:<10}{len(x['losses']):>7}{pps:>10,.1f}{x['peak_rss_mb']:>13,.0f}"
            f"{x['losses'][-1]:>12.4f}{x['accuracy']:>14.3f}"
        )
    if os.environ.get("RM_BENCH_LOSSES"):
        print("plain ", [round(x, 4) for x in plain["losses"]])
        print("llmctl", [round(x, 4) for x in ours["losses"]])
    overhead = plain["seconds"] and ours["seconds"] / plain["seconds"] - 1
    print(
        f"llmctl overhead in train time: {overhead:+.1%} (train loop only); max |loss diff| {diff:.2e}; "
        f"{len(train)} training pairs, {len(held)} held out"
    )


if __name__ == "__main__":
    main()
