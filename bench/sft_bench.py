"""`llmctl sft` against a plain TRL SFTTrainer script: same model, examples and hyper-parameters.

    .venv/bin/python bench/sft_bench.py                          # the tiny chat model, 30 steps
    .venv/bin/python bench/sft_bench.py --model DIR --data chat.jsonl --steps 50 --max-length 512

Both runs train on the same examples in the same order (the bench asks llmctl's data layer for
them, then hands the list to the plain script) with the same SFTConfig values and seed. The plain
script is what a TRL user writes: a datasets.Dataset of messages, SFTConfig, SFTTrainer, train.
Each run is its own process; the table shows train tokens/s (TRL's num_tokens over the
train_runtime), the process's peak RSS, and the largest difference between the logged losses
(goal: overhead <= 5%, identical losses).
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
import datasets
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
a = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(a["model"])
tok.chat_template = a["template"]
args = SFTConfig(output_dir=a["out"], max_steps=a["steps"], per_device_train_batch_size=a["batch"],
    learning_rate=a["lr"], lr_scheduler_type="cosine", warmup_steps=a["warmup"], logging_steps=1,
    save_strategy="no", seed=a["seed"], data_seed=a["seed"], max_length=a["max_length"],
    assistant_only_loss=True, use_cpu=True, report_to=[], disable_tqdm=True, dataloader_num_workers=0,
    activation_checkpointing=False, bf16=False)  # TRL defaults both on; the recipe: float32, no recompute
trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(a["model"]), args=args,
    train_dataset=datasets.Dataset.from_list(a["examples"]), processing_class=tok)
out = trainer.train()
h = trainer.state.log_history
print(json.dumps({"losses": [x["loss"] for x in h if "loss" in x],
    "tokens": int(max(x.get("num_tokens", 0) for x in h)), "seconds": out.metrics["train_runtime"],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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


def examples(model: Path, data: Path, recipe: dict, work: Path) -> tuple[list, str]:
    """The training examples, in order, and the chat template `llmctl sft` would train on."""
    from llmctl import artifacts, hf
    from llmctl import config as cfgmod
    from llmctl.sft import stage
    from llmctl.sft.config import SftConfig, add_data_args

    cfg = cfgmod.load(SftConfig, None, [f"{k}={v}" for k, v in recipe.items()], {"model": str(model)})
    add_data_args(cfg, [f"chat={data}"])
    tok = hf.load_tokenizer(model, what="bench")
    stage._set_training_template(tok, cfg)
    art = artifacts.StageRun("bench", work / "x", {}, [], work / "staging")
    art.staging.mkdir(parents=True)
    pools, counts = stage._read_sources(cfg, {}, art)
    pools = stage._fit_length(pools, tok, cfg, counts)
    _, pools = stage._hold_out(pools, cfg)
    plan = stage._plan_stages(cfg, stage._stages(cfg), pools)
    return plan[0]["examples"], tok.chat_template


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, default=None, help="HF model dir (default: the tests' tiny chat model)"
    )
    ap.add_argument("--data", type=Path, default=REPO / "tests/assets/sft/chitchat-240.jsonl")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    model = args.model
    if model is None:
        from tests.fixtures.models import tiny_chat_llama

        model = tiny_chat_llama(work / "model")
    recipe = {
        "train.max_steps": args.steps, "train.batch_size": args.batch, "train.lr": args.lr,
        "train.warmup_ratio": 0.1, "train.schedule": "cosine", "train.logging_steps": 1,
        "train.save_steps": 10**6, "train.seed": 1234, "data.max_length": args.max_length,
        "data.held_out": 16, "train.device": "cpu", "train.dtype": "float32",
    }  # fmt: skip
    exs, template = examples(model, args.data, recipe, work)
    spec = {
        "model": str(model), "template": template, "out": str(work / "plain"), "steps": args.steps,
        "batch": args.batch, "lr": args.lr, "warmup": 0.1, "seed": 1234, "max_length": args.max_length,
        "examples": exs,
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
        "sft",
        str(model),
        f"chat={args.data}",
        "--out",
        str(work / "llmctl"),
        *sets,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    rss = json.loads(r.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    m = json.loads((work / "llmctl" / "manifest.json").read_text())["metrics"]
    st = m["stages"][0]
    curve = [
        float(line.split(",")[2])
        for line in (work / "llmctl" / "loss_curve.csv").read_text().splitlines()[1:]
    ]
    # the trainer's own train_runtime on both sides (llmctl's `seconds` also spans its callbacks' setup)
    ours = {"tokens": st["tokens"], "seconds": st["train_runtime"], "losses": curve, "peak_rss_mb": rss}
    diff = max(abs(a - b) for a, b in zip(plain["losses"], ours["losses"], strict=True))
    print(f"{'run':<10}{'steps':>7}{'tokens':>10}{'tokens/s':>11}{'peak RSS MB':>13}{'final loss':>12}")
    for name, x in (("plain TRL", plain), ("llmctl", ours)):
        tps = x["tokens"] / x["seconds"]
        print(
            f"{name:<10}{len(x['losses']):>7}{x['tokens']:>10,}{tps:>11,.0f}{x['peak_rss_mb']:>13,.0f}"
            f"{x['losses'][-1]:>12.4f}"
        )
    overhead = (plain["tokens"] / plain["seconds"]) / (ours["tokens"] / ours["seconds"]) - 1
    if os.environ.get("SFT_BENCH_LOSSES"):
        print("plain ", [round(x, 4) for x in plain["losses"]])
        print("llmctl", [round(x, 4) for x in ours["losses"]])
    print(f"llmctl overhead in tokens/s: {overhead:+.1%} (train loop only); max |loss diff| {diff:.2e}")


if __name__ == "__main__":
    main()
