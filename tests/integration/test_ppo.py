"""`llmctl ppo` and `llmctl bon` end to end on a tiny chat policy and a tiny reward model that
`llmctl rm` trains (in this module) on a learnable preference: an answer followed by "Thank you,
friend!" over the bare answer. PPO and bon --sft raise the reward of the policy's greedy answers
to held-out prompts, KL stays finite and in a band, logs and samples are written, the artifact
loads offline; bad input is exit 2 before training."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest

from llmctl import artifacts
from tests.conftest import ASSETS, REPO, llmctl
from tests.fixtures.models import tiny_chat_llama

CHATS = ASSETS / "sft" / "chitchat-240.jsonl"
RECIPE = REPO / "recipes" / "ppo" / "tiny.yaml"
KL_BAND = 6.0  # nats per response: with kl_coef 0.05 the tiny run stays under ~3 (0.02: up to 9)


def _chats() -> list[tuple[str, str]]:
    out = []
    for line in CHATS.read_text().splitlines():
        msgs = json.loads(line)["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        answer = next(m["content"] for m in msgs if m["role"] == "assistant")
        out.append((user, answer))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One tiny policy, one reward model trained by llmctl rm from the same base, a prompt file."""
    d = tmp_path_factory.mktemp("ppo")
    base = tiny_chat_llama(d / "base")
    pairs = [{"prompt": u, "chosen": a + " Thank you, friend!", "rejected": a} for u, a in _chats()]
    (d / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": u}) + "\n" for u, _ in _chats()[:120]))
    r = llmctl("rm", str(base), f"pairs={d / 'pairs.jsonl'}", "--out", str(d / "rm"),
               "--config", str(REPO / "recipes" / "rm" / "tiny.yaml"), timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return {"dir": d, "base": base, "rm": d / "rm", "prompts": d / "prompts.jsonl"}


def _ppo(setup, out, *extra, prompts=None, rm=None, policy=None):
    return llmctl(
        "ppo", str(policy or setup["base"]), "--reward-model", str(rm or setup["rm"]),
        "--prompts", str(prompts or setup["prompts"]), "--out", str(out), "--config", str(RECIPE), *extra,
        timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(setup):
    out = setup["dir"] / "out"
    r = _ppo(setup, out)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.mark.slow
def test_ppo_raises_the_held_out_greedy_reward_with_finite_kl(trained):
    m = artifacts.Manifest.read(trained).metrics
    assert m["steps"] == 16 and m["episodes"] == 128
    assert m["reward_after"] > m["reward_before"]
    assert math.isfinite(m["final_kl"]) and abs(m["final_kl"]) < KL_BAND
    assert m["max_kl"] < KL_BAND


@pytest.mark.slow
def test_every_step_is_logged_and_samples_are_written(trained):
    rows = list(csv.DictReader((trained / "ppo_log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    for key in ("reward_raw", "reward", "kl", "entropy", "value_loss", "clipfrac", "response_length"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert all(0 <= float(r["response_length"]) <= 16 for r in rows)  # ppo.response_length
    assert len((trained / "ppo_log.jsonl").read_text().splitlines()) == 16
    assert (trained / "ppo_curves.png").stat().st_size > 0
    samples = [json.loads(x) for x in (trained / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {4, 8, 12, 16} and all("reward" in s for s in samples)


@pytest.mark.slow
def test_the_policy_loads_offline_with_its_chat_template(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained / "hf", local_files_only=True, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(trained / "hf", local_files_only=True)
    assert tok.chat_template and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert not (trained / "checkpoints").exists()


@pytest.mark.slow
def test_bon_sft_raises_the_held_out_reward(setup):
    out = setup["dir"] / "bon"
    sft_recipe = REPO / "recipes" / "sft" / "tiny.yaml"
    r = llmctl(
        "bon", str(setup["base"]), "--reward-model", str(setup["rm"]), "--prompts", str(setup["prompts"]),
        "--n", "4", "--out", str(out), "--sft", "--set", f"sft_recipe={sft_recipe}",
        "--set", "bon.max_new_tokens=16", timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["reward_chosen"]["mean"] > m["reward_all"]["mean"]
    assert m["policy_reward_after"] > m["policy_reward_before"]
    rec = json.loads((out / "data" / "samples.jsonl").read_text().splitlines()[0])
    assert len(rec["responses"]) == 4
    best = rec["responses"][rec["best"]]["reward"]
    assert best == max(x["reward"] for x in rec["responses"])
    assert artifacts.is_complete(out / "sft_model")


def test_a_reward_model_that_is_not_a_sequence_classifier_is_exit_2(setup, tmp_path):
    r = _ppo(setup, tmp_path / "o", rm=setup["base"])  # a causal LM, no reward.json
    assert r.returncode == 2 and "not a reward-model artifact" in r.stderr
    fake = tmp_path / "fake"
    (fake).mkdir()
    (fake / "reward.json").write_text("{}")
    (fake / "hf").symlink_to(setup["base"])
    r = _ppo(setup, tmp_path / "o", rm=fake)
    assert r.returncode == 2 and "not a 1-label sequence classifier" in r.stderr
    assert not (tmp_path / "o").exists()


def test_an_empty_prompt_file_is_exit_2(setup, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = _ppo(setup, tmp_path / "o", prompts=empty)
    assert r.returncode == 2 and "no prompts" in r.stderr and "Traceback" not in r.stderr


def test_a_policy_with_another_vocabulary_is_exit_2(setup, tmp_path):
    other = tiny_chat_llama(tmp_path / "other", seed=0)
    tok = json.loads((other / "tokenizer.json").read_text())
    tok["model"]["vocab"]["zzzz_extra"] = len(tok["model"]["vocab"])
    (other / "tokenizer.json").write_text(json.dumps(tok))
    r = _ppo(setup, tmp_path / "o", policy=other)
    assert r.returncode == 2 and "vocabulary differs" in r.stderr, r.stderr[-2000:]


@pytest.mark.slow
def test_lora_trains_an_adapter_against_the_adapter_disabled_reference(setup):
    out = setup["dir"] / "lora"
    r = _ppo(
        setup, out, "--lora", "--set", "ppo.total_episodes=32", "--set", "lora.target_modules=[q_proj,v_proj]"
    )
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["lora"] and m["steps"] == 4
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert 0 < m["max_kl"] < KL_BAND  # the adapter moved the policy away from the disabled-adapter reference
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True, use_safetensors=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())


FAST = [  # 2 steps of 8 prompts, short answers, a checkpoint after every step; LoRA, adaptive KL
    *("--set", "ppo.total_episodes=16", "--set", "ppo.save_steps=1", "--set", "ppo.num_ppo_epochs=2"),
    *("--set", "ppo.response_length=8", "--set", "ppo.sample_every=1", "--set", "data.held_out=2"),
    *("--lora", "--set", "ppo.kl_target=0.01", "--set", "ppo.kl_horizon=16"),
]


def _weights(path):
    from safetensors.torch import load_file

    return load_file(path / "hf" / "model.safetensors")


@pytest.fixture(scope="module")
def whole(setup):
    """An uninterrupted 2-step run (the reference of the resume and the combined-scorer checks)."""
    out = setup["dir"] / "whole"
    r = _ppo(setup, out, *FAST)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_resume_after_kill_9_repeats_the_uninterrupted_run(setup, whole):
    """PPO samples with the seeded torch RNG and shuffles with NumPy's: a run killed after its step-1
    checkpoint and resumed ends with bit-identical weights, logs and samples (same machine, one thread)."""
    import signal
    import subprocess
    import sys
    import time

    cut = setup["dir"] / "cut"
    args = ["ppo", str(setup["base"]), "--reward-model", str(setup["rm"]), "--prompts", str(setup["prompts"]),
            "--out", str(cut), "--config", str(RECIPE), *FAST]  # fmt: skip
    staging = artifacts.staging_dir(cut)
    env = {**os.environ, "LLMCTL_QUIET": "1"}
    cmd = [sys.executable, "-m", "llmctl.cli", *args]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    while p.poll() is None and not (staging / "checkpoints" / "step-1").is_dir():
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not artifacts.is_complete(cut)
    r = llmctl(*args, "--resume", timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(cut).metrics
    assert m["resumed_from_step"] == 1 and m["steps"] == 2 and m["episodes"] == 16
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    assert (cut / "ppo_log.csv").read_text() == (whole / "ppo_log.csv").read_text()
    assert (cut / "samples.jsonl").read_text() == (whole / "samples.jsonl").read_text()
    assert not (cut / "checkpoints").exists()
    # the adaptive KL coefficient (Ziegler et al.) after the resume is the one the controller gave
    # after step 1, as in the uninterrupted run: 0.05 scaled by 1 + clip(KL/target - 1, +-0.2) * 8/16
    # (step 1 rolls out the policy as it starts, equal to the reference: KL 0, so it shrinks 10%)
    from llmctl.ppo.train import adapt_kl_coef

    one, two = (json.loads(x) for x in (cut / "ppo_log.jsonl").read_text().splitlines())
    assert one["kl_coef"] == 0.05
    assert two["kl_coef"] == adapt_kl_coef(0.05, one["kl"], 0.01, 8, 16) != 0.05


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


def test_two_ranks_train_on_a_combined_scorer_and_rank_0_writes_the_whole_artifact(setup, whole):
    """--nproc 2 (gloo on CPU): each rank rolls out its own 8 prompts per step, so a step counts 16
    episodes; rank 0 alone writes hf/, the logs and the samples. The reward model is a combined
    scorer of two criteria (here one model twice, weights 1 and 1: the reward is twice the
    normalised single one, checked on the held-out greedy answers the reference run also scored)."""
    comb = setup["dir"] / "combined"
    (comb / "criteria").mkdir(parents=True)
    for name in ("a", "b"):
        (comb / "criteria" / name).symlink_to(setup["rm"])
    parts = {n: {"path": f"criteria/{n}", "weight": 1.0} for n in ("a", "b")}
    (comb / "reward.json").write_text(json.dumps({"combined": parts}))
    out = setup["dir"] / "dp"
    r = _ppo(setup, out, *FAST, "--set", "ppo.total_episodes=16", "--nproc", "2", rm=comb)
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["nproc"] == 2 and m["steps"] == 1 and m["episodes"] == 16
    rows = list(csv.DictReader((out / "ppo_log.csv").open()))
    assert [int(r["episode"]) for r in rows] == [16]
    assert all(math.isfinite(float(r["kl"])) and math.isfinite(float(r["reward"])) for r in rows)
    assert {json.loads(x)["step"] for x in (out / "samples.jsonl").read_text().splitlines()} == {1}
    assert (out / "hf" / "model.safetensors").is_file() and (out / "ppo_curves.png").is_file()
    assert not (out / "checkpoints").exists() and not artifacts.staging_dir(out).exists()
    spec = json.loads((setup["rm"] / "reward.json").read_text())
    single = artifacts.Manifest.read(whole).metrics["reward_before"]
    want = 2 * (single - spec["reward_mean"]) / spec["reward_std"]
    assert m["reward_before"] == pytest.approx(want, abs=1e-4)
