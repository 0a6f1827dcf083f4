"""`llmctl ppo` against a plain TRL 1.12 PPOTrainer script (what the engine's own example,
trl/examples/scripts/ppo/ppo.py, does): same policy, reward model, prompts and PPO values.

    .venv/bin/python bench/ppo_bench.py                 # the tests' tiny policy + an llmctl rm reward model
    .venv/bin/python bench/ppo_bench.py --policy DIR --rm RM_DIR --prompts p.jsonl --episodes 256

The plain script loads policy, reference, reward and value models with from_pretrained (value and
reward from the rm artifact's hf/), tokenizes the prompts with the chat template (left padding),
builds PPOConfig with the same values as recipes/ppo/tiny.yaml and trains. Each run is its own
process; the table shows episodes/s over train() and the process's peak RSS (goal: overhead <= 5%).
The plain script feeds the raw reward (no reward.json normalisation) and does not score held-out
answers before/after, which llmctl does outside the timed train() call.
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
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl.experimental.ppo import PPOConfig, PPOTrainer
a = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(a["policy"], padding_side="left")
stop = tok.convert_tokens_to_ids("<|im_end|>")
policy = AutoModelForCausalLM.from_pretrained(a["policy"])
ref = AutoModelForCausalLM.from_pretrained(a["policy"])
rm = AutoModelForSequenceClassification.from_pretrained(a["rm"] + "/hf", num_labels=1)
value = AutoModelForSequenceClassification.from_pretrained(a["rm"] + "/hf", num_labels=1)
rows = [{"input_ids": tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
         tokenize=True, return_dict=False)} for p in a["prompts"]]
ds = datasets.Dataset.from_list(rows)
p = a["ppo"]
args = PPOConfig(output_dir=a["out"], per_device_train_batch_size=p["batch_size"],
    gradient_accumulation_steps=1,
    per_device_eval_batch_size=p["batch_size"], local_rollout_forward_batch_size=p["batch_size"],
    num_mini_batches=p["num_mini_batches"], total_episodes=a["episodes"], num_ppo_epochs=p["num_ppo_epochs"],
    learning_rate=p["lr"], kl_coef=p["kl_coef"], response_length=p["response_length"],
    temperature=p["temperature"], stop_token_id=stop, seed=1234, logging_steps=1, save_strategy="no",
    num_sample_generations=0, report_to=[], bf16=False, gradient_checkpointing=False, use_cpu=True,
    disable_tqdm=True)
trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
    train_dataset=ds, value_model=value, eval_dataset=ds.select(range(8)))
t0 = time.perf_counter()
trainer.train()
s = time.perf_counter() - t0
print(json.dumps({"episodes_per_s": trainer.state.episode / s, "seconds": s,
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


def tiny_setup(work: Path) -> tuple[Path, Path, Path]:
    """The integration tests' setup: a tiny policy, a reward model llmctl rm trains, 120 prompts."""
    from tests.conftest import llmctl
    from tests.fixtures.models import tiny_chat_llama

    base = tiny_chat_llama(work / "base")
    pairs, prompts = [], []
    for line in (REPO / "tests/assets/sft/chitchat-240.jsonl").read_text().splitlines():
        msgs = json.loads(line)["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        answer = next(m["content"] for m in msgs if m["role"] == "assistant")
        pairs.append({"prompt": user, "chosen": answer + " Thank you, friend!", "rejected": answer})
        prompts.append({"prompt": user})
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (work / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prompts[:120]))
    r = llmctl("rm", str(base), f"pairs={work / 'pairs.jsonl'}", "--out", str(work / "rm"),
               "--config", str(REPO / "recipes/rm/tiny.yaml"), timeout=1800)  # fmt: skip
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    return base, work / "rm", work / "prompts.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--policy", type=Path, default=None, help="HF causal-LM dir (default: the tests' tiny one)"
    )
    ap.add_argument("--rm", type=Path, default=None, help="llmctl rm artifact (default: trained here)")
    ap.add_argument("--prompts", type=Path, default=None, help="JSONL of {prompt} strings")
    ap.add_argument("--episodes", type=int, default=128)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ppo-bench-"))
    if args.policy is None or args.rm is None or args.prompts is None:
        policy, rm, prompts = tiny_setup(work)
    else:
        policy, rm, prompts = args.policy, args.rm, args.prompts
    import yaml

    recipe = yaml.safe_load((REPO / "recipes/ppo/tiny.yaml").read_text())
    texts = [json.loads(x)["prompt"] for x in prompts.read_text().splitlines() if x.strip()]
    held = recipe["data"]["held_out"]
    spec = {"policy": str(policy), "rm": str(rm), "out": str(work / "plain"), "episodes": args.episodes,
            "ppo": recipe["ppo"], "prompts": texts[held:]}  # fmt: skip
    (work / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}",
        "LLMCTL_QUIET": "1",
    }
    r = subprocess.run([sys.executable, "-c", PLAIN, str(work / "spec.json")], capture_output=True, text=True,
                       env=env)  # fmt: skip
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    plain = json.loads(r.stdout.strip().splitlines()[-1])
    out = work / "llmctl"
    cmd = [sys.executable, "-c", LLMCTL, "ppo", str(policy), "--reward-model", str(rm), "--prompts",
           str(prompts), "--out", str(out), "--config", str(REPO / "recipes/ppo/tiny.yaml"),
           "--set", f"ppo.total_episodes={args.episodes}", "--set", "ppo.samples=0", "--quiet"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    mine = json.loads(r.stdout.strip().splitlines()[-1])
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    print(f"{'run':<10} {'episodes/s':>11} {'peak RSS MB':>12}")
    print(f"{'plain TRL':<10} {plain['episodes_per_s']:>11.3f} {plain['peak_rss_mb']:>12.0f}")
    print(f"{'llmctl':<10} {m['episodes_per_s']:>11.3f} {mine['peak_rss_mb']:>12.0f}")
    print(f"overhead: {100 * (plain['episodes_per_s'] / m['episodes_per_s'] - 1):+.1f}% time per episode")


if __name__ == "__main__":
    main()
