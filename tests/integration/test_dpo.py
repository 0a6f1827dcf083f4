"""`llmctl dpo` end to end on a tiny chat model: held-out implicit-reward accuracy goes from chance
(0.5: before training pi == pi_ref) to >= 0.9 on a learnable preference (an answer vs the same
answer spelled backwards), every record is accounted for, the artifact loads offline, a second run
is a no-op, a killed run resumes to the same result, LoRA changes only the adapter and the merged
hf/ equals base + adapter, precomputed reference log-probs with IPO + the sft term train, bad
input is exit 2 before training."""

from __future__ import annotations

import json
import re

import pytest
import torch

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.fixtures.kill import killed
from tests.fixtures.models import tiny_chat_llama
from tests.integration.test_rm import corrupted, synthetic_pairs

RECIPE = REPO / "recipes" / "dpo" / "tiny.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_llama(tmp_path_factory.mktemp("dpo") / "base")


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """240 learnable pairs, plus a rankings file and a ratings file with bad records in them."""
    d = tmp_path_factory.mktemp("prefs")
    (d / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in synthetic_pairs()) + "\n")
    rankings = [
        {"prompt": "Say hi.", "responses": ["Hi!", "!iH", "iH !"], "ranking": [0, 2, 1]},  # 3 pairs
        {"prompt": "Say bye.", "responses": ["Bye.", "Bye."], "ranking": [0, 1]},  # identical: rejected
    ]
    (d / "rankings.jsonl").write_text("\n".join(json.dumps(r) for r in rankings) + "\n{broken\n")
    ratings = [
        {"prompt": "How are you?", "response": "I am well.", "score": 9},
        {"prompt": "How are you?", "response": ".llew ma I", "score": 1},
        {"prompt": "Bad", "response": "x", "score": "high"},  # bad score
    ]
    (d / "ratings.jsonl").write_text("\n".join(json.dumps(r) for r in ratings) + "\n")
    return d


def _cmd(base, prefs, out):
    return [
        "dpo", str(base), f"pairs={prefs / 'pairs.jsonl'}", f"rankings={prefs / 'rankings.jsonl'}",
        f"ratings={prefs / 'ratings.jsonl'}", "--out", str(out), "--config", str(RECIPE),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(base, prefs, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "dpo"
    r = llmctl(*_cmd(base, prefs, out))
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.mark.slow
def test_held_out_accuracy_goes_from_chance_to_above_0_9(trained):
    m = artifacts.Manifest.read(trained).metrics
    assert m["steps"] == 40
    assert m["held_out_accuracy_before"] == 0.5 and m["held_out_kl_before"] == 0.0
    assert m["held_out_accuracy_after"] >= 0.9
    assert m["held_out_margin_after"] > 1.0
    assert m["held_out_reward_chosen_after"] > m["held_out_reward_rejected_after"]
    assert 0 < m["held_out_kl_after"] < 1.0  # it moved, and stayed near the reference
    assert m["first_train_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: pi == pi_ref at step 0
    assert m["final_train_loss"] < 0.3
    assert (trained / "loss_curve.png").stat().st_size > 0
    assert (trained / "loss_curve.csv").read_text().startswith("step,loss,reward_accuracy,reward_margin\n")


@pytest.mark.slow
def test_every_record_is_accounted_for(trained):
    s = artifacts.Manifest.read(trained).metrics["sources"]
    for c in s.values():
        assert c["kept"] + c["rejected"] == c["input"]
    rk, ra = s["rankings"], s["ratings"]
    assert (rk["input"], rk["kept"], rk["reasons"], rk["pairs"]) == (
        3,
        1,
        {"identical": 1, "bad_record": 1},
        3,
    )
    assert (ra["input"], ra["kept"], ra["reasons"], ra["pairs"]) == (3, 2, {"bad_score": 1}, 1)
    p = s["pairs"]
    assert p["pairs_used"] == p["train_pairs"] + p["held_out_pairs"] == 240 - p.get("pairs_overlong", 0)
    from llmctl.formats import documents

    rejected = list(documents.read_shards(trained / "rejected"))
    assert sum(1 for r in rejected if "where" in r) == sum(c["rejected"] for c in s.values())
    assert sum(1 for r in rejected if r["reason"] == "overlong") == sum(
        c.get("pairs_overlong", 0) for c in s.values()
    )


@pytest.mark.slow
def test_the_artifact_loads_offline_and_prefers_the_chosen_answer(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained / "hf", local_files_only=True, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(trained / "hf", local_files_only=True)
    assert tok.chat_template and tok.pad_token_id is not None

    def logp(answer):
        prompt = [{"role": "user", "content": "Hi!"}]
        head = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
        ids = tok.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], return_dict=False)
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
        return sum(lp[t - 1, ids[t]].item() for t in range(len(head), len(ids)))

    assert logp("Hello there, how can I help?") > logp(corrupted("Hello there, how can I help?"))


@pytest.mark.slow
def test_a_second_run_is_a_no_op(trained, base, prefs):
    before = (trained / "manifest.json").read_bytes()
    r = llmctl(*_cmd(base, prefs, trained))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (trained / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_two_data_parallel_ranks_learn_the_same_preference(base, prefs, trained, tmp_path):
    """--nproc 2 at half the per-rank batch (gloo ranks through torchrun, llmctl.ranks): the same
    pairs and split, the same number of steps, and the held-out accuracy clears 0.9."""
    out = tmp_path / "dpo2"
    r = llmctl(*_cmd(base, prefs, out), "--nproc", "2", "--set", "train.batch_size=4", timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    got, want = artifacts.Manifest.read(out), artifacts.Manifest.read(trained)
    assert got.config["nproc"] == 2
    g, w = got.metrics, want.metrics
    assert (g["train_pairs"], g["steps"]) == (w["train_pairs"], 40)
    assert g["first_train_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert g["held_out_accuracy_after"] >= 0.9
    assert (out / "hf" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(base, prefs, trained, tmp_path):
    out = tmp_path / "dpo"
    cmd = _cmd(base, prefs, out)
    # placed, not timed: right after the trainer wrote checkpoint-20's trainer_state.json, its last file
    assert killed("transformers.trainer_callback:TrainerState.save_to_json", "after", 2, *cmd) == -9
    assert not (out / "manifest.json").exists()
    r = llmctl(*cmd, "--resume")
    assert r.returncode == 0, r.stderr[-4000:]
    got, want = artifacts.Manifest.read(out).metrics, artifacts.Manifest.read(trained).metrics
    assert got["resumed_from"] == "checkpoint-20"
    assert got["final_train_loss"] == pytest.approx(want["final_train_loss"], abs=1e-4)
    assert got["held_out_accuracy_after"] == want["held_out_accuracy_after"]
    assert got["held_out_margin_after"] == pytest.approx(want["held_out_margin_after"], abs=1e-3)
    # TRL counts trained tokens from zero in each train() call; the checkpoint's state carries the count
    assert got["tokens_trained"] == want["tokens_trained"] > 0


@pytest.mark.slow
def test_lora_changes_only_the_adapter_and_hf_is_base_plus_adapter(base, prefs, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    r = llmctl(*_cmd(base, prefs, out), "--lora", "--max-steps", "20", "--set", "lora.r=4",
               "--set", "train.lr=0.005")  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["lora"] is True and m["base_weights_changed"] == 0
    assert m["reference"] == "adapter-disabled policy"
    assert m["held_out_accuracy_after"] >= 0.9
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out / "adapter")
    want = merged.merge_and_unload().state_dict()
    got = load_file(out / "hf" / "model.safetensors")
    before = load_file(base / "model.safetensors")
    for k, v in got.items():
        assert torch.allclose(v, want[k], atol=1e-6), k
    adapted = [k for k in before if any(t in k for t in ("q_proj", "k_proj", "v_proj", "o_proj"))]
    assert adapted and any(not torch.equal(before[k], got[k]) for k in adapted)
    assert all(torch.equal(before[k], got[k]) for k in before if k not in adapted and k in got)


@pytest.mark.slow
def test_precomputed_reference_with_ipo_and_the_sft_term_trains(base, prefs, tmp_path):
    out = tmp_path / "ipo"
    r = llmctl(*_cmd(base, prefs, out), "--max-steps", "8", "--set", "reference.precompute=true",
               "--set", "train.loss=ipo", "--set", "train.sft_weight=0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert (m["loss"], m["sft_weight"], m["steps"]) == ("ipo", 0.5, 8)
    assert m["held_out_accuracy_after"] > 0.5 and m["held_out_kl_after"] > 0
    cfg = artifacts.Manifest.read(out).config
    assert cfg["reference"]["precompute"] is True


@pytest.mark.slow
def test_a_named_reference_is_the_one_the_rewards_are_measured_against(base, prefs, trained, tmp_path):
    """reference.model = the trained artifact, policy = the untrained base: before training the
    implicit reward beta*log(base/trained) prefers the rejected answers (accuracy well below 0.5)."""
    out = tmp_path / "named"
    r = llmctl(*_cmd(base, prefs, out), "--max-steps", "2", "--set", f"reference.model={trained}")
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["reference"] == str(trained)
    assert m["held_out_accuracy_before"] <= 0.2 and m["held_out_kl_before"] > 0
    inputs = [i["path"] for i in artifacts.Manifest.read(out).inputs]
    assert str(trained) in inputs


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("columns", r"bad.jsonl:1: not a preference record.*it has: answer, question"),
        ("lora", "lora.target_modules: w_nope not in the model"),
        ("held_out", "data.held_out=500 prompts leaves none for training"),
        ("missing", r"data.sources.nope: .*nope.jsonl does not exist"),
        ("loss", "train.loss"),
        ("context", "data.max_length=4096 is above the model's context"),
    ],
)
def test_bad_input_is_exit_2_before_training(base, prefs, tmp_path, case, match):
    data, extra = f"pairs={prefs / 'pairs.jsonl'}", []
    bad = tmp_path / "bad.jsonl"
    if case == "columns":
        bad.write_text('{"question": "q", "answer": "a"}\n')
        data = str(bad)
    elif case == "lora":
        extra = ["--lora", "--set", "lora.target_modules=[w_nope]"]
    elif case == "held_out":
        extra = ["--set", "data.held_out=500"]
    elif case == "missing":
        data = f"nope={tmp_path / 'nope.jsonl'}"
    elif case == "loss":
        extra = ["--set", "train.loss=hinge"]
    elif case == "context":
        extra = ["--set", "data.max_length=4096"]
    r = llmctl("dpo", str(base), data, "--out", str(tmp_path / "out"), "--config", str(RECIPE), *extra)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert re.search(match, r.stderr), r.stderr[-2000:]
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not artifacts.staging_dir(tmp_path / "out").exists()
