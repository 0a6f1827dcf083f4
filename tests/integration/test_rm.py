"""`llmctl rm` and `llmctl score` end to end on a tiny chat model: held-out pairwise accuracy goes
from chance to >= 0.9 on a learnable preference (an answer vs the same answer spelled backwards),
every record is accounted for, the artifact loads offline and scores like the scorer, the LM
regulariser adds exactly lm_weight * the LM loss, a second run is a no-op, a killed run resumes to
the same result, LoRA leaves the base weights alone, bad input is exit 2 before training."""

from __future__ import annotations

import json
import re

import pytest
import torch

from llmctl import artifacts
from tests.conftest import ASSETS, REPO, llmctl
from tests.fixtures.kill import killed
from tests.fixtures.models import tiny_chat_llama

CHATS = ASSETS / "sft" / "chitchat-240.jsonl"
RECIPE = REPO / "recipes" / "rm" / "tiny.yaml"


def corrupted(answer: str) -> str:
    return " ".join(w[::-1] for w in answer.split())


def synthetic_pairs() -> list[dict]:
    """One pair per chat: the assistant's answer chosen, the same answer spelled backwards rejected."""
    out = []
    for line in CHATS.read_text().splitlines():
        msgs = json.loads(line)["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        answer = next(m["content"] for m in msgs if m["role"] == "assistant")
        out.append({"prompt": user, "chosen": answer, "rejected": corrupted(answer)})
    return out


def short_pairs(max_chars: int = 120) -> list[dict]:
    """The synthetic pairs whose prompt + answer fit in `max_chars` characters (151 of 240): with
    SmolLM2's template every sequence fits in 72 tokens, so its slow tests pad to 72, not 128."""
    return [p for p in synthetic_pairs() if len(p["prompt"]) + len(p["chosen"]) <= max_chars]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_llama(tmp_path_factory.mktemp("rm") / "base")


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """240 learnable pairs, plus a rankings file and a ratings file with bad records in them."""
    d = tmp_path_factory.mktemp("prefs")
    (d / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in synthetic_pairs()) + "\n")
    rankings = [
        {"prompt": "Say hi.", "responses": ["Hi!", "!iH", "iH !"], "ranking": [0, 2, 1]},  # 3 pairs
        {"prompt": "Say bye.", "responses": ["Bye.", "Bye."], "ranking": [0, 1]},  # identical: rejected
        {"prompt": "Thanks.", "responses": ["You're welcome.", ".emoclew er'uoY"], "ranking": [0, 1]},
    ]
    (d / "rankings.jsonl").write_text("\n".join(json.dumps(r) for r in rankings) + "\n{broken\n")
    ratings = [
        {"prompt": "How are you?", "response": "I am well.", "score": 9},
        {"prompt": "How are you?", "response": ".llew ma I", "score": 1},
        {"prompt": "How are you?", "response": "Fine.", "score": 8.5},  # a tie with the first
        {"prompt": "Lonely prompt", "response": "alone", "score": 3},  # no pair
        {"prompt": "Bad", "response": "x", "score": "high"},  # bad score
    ]
    (d / "ratings.jsonl").write_text("\n".join(json.dumps(r) for r in ratings) + "\n")
    return d


def _rm(base, prefs, out, *extra):
    return llmctl(
        "rm", str(base), f"pairs={prefs / 'pairs.jsonl'}", f"rankings={prefs / 'rankings.jsonl'}",
        f"ratings={prefs / 'ratings.jsonl'}", "--out", str(out), "--config", str(RECIPE), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(base, prefs, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "rm"
    r = _rm(base, prefs, out)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.mark.slow
def test_held_out_accuracy_goes_from_chance_to_above_0_9(trained):
    m = artifacts.Manifest.read(trained).metrics
    assert m["steps"] == 40
    assert m["held_out_accuracy_before"] <= 0.75  # a random score head: about chance
    assert m["held_out_accuracy_after"] >= 0.9
    assert m["held_out_margin_after"] > m["held_out_margin_before"] + 1.0
    assert m["final_train_loss"] < m["first_train_loss"]
    assert m["per_source"]["pairs"]["after"]["accuracy"] >= 0.9
    assert (trained / "loss_curve.png").stat().st_size > 0
    assert (trained / "loss_curve.csv").read_text().startswith("step,loss,accuracy,margin,lm_loss\n")


@pytest.mark.slow
def test_every_record_is_accounted_for(trained):
    s = artifacts.Manifest.read(trained).metrics["sources"]
    for c in s.values():
        assert c["kept"] + c["rejected"] == c["input"]
    rk, ra = s["rankings"], s["ratings"]
    assert (rk["input"], rk["kept"], rk["reasons"]) == (4, 2, {"identical": 1, "bad_record": 1})
    assert rk["pairs"] == 3 + 1
    assert (ra["input"], ra["kept"], ra["reasons"]) == (5, 3, {"no_pair": 1, "bad_score": 1})
    assert ra["pairs"] == 2 and ra["pairs_not_formed"] == {"tie": 1}
    p = s["pairs"]
    assert (p["input"], p["kept"], p["pairs"]) == (240, 240, 240)
    assert p["pairs_used"] == p["train_pairs"] + p["held_out_pairs"] == 240 - p.get("pairs_overlong", 0)
    from llmctl.formats import documents

    rejected = list(documents.read_shards(trained / "rejected"))
    records = [r for r in rejected if "where" in r]
    assert len(records) == sum(c["rejected"] for c in s.values())
    assert sum(1 for r in rejected if r["reason"] == "overlong") == sum(
        c.get("pairs_overlong", 0) for c in s.values()
    )


@pytest.mark.slow
def test_the_artifact_loads_offline_and_scores_as_the_scorer(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmctl.rm.scorer import Scorer

    model = AutoModelForSequenceClassification.from_pretrained(
        trained / "hf", local_files_only=True, use_safetensors=True
    ).eval()
    tok = AutoTokenizer.from_pretrained(trained / "hf", local_files_only=True)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id is not None
    spec = json.loads((trained / "reward.json").read_text())
    assert spec["chat_template"] == tok.chat_template and spec["max_length"] == 256
    assert spec["reward_std"] > 0
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello there."}], tokenize=False
    )
    with torch.no_grad():
        direct = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
    scorer = Scorer.load(trained)
    assert scorer.score([("Hi!", "Hello there.")])[0] == pytest.approx(direct, abs=1e-5)
    good, bad = scorer.score([("Hi!", "Hello there."), ("Hi!", corrupted("Hello there."))])
    assert good > bad


@pytest.mark.slow
def test_a_second_run_is_a_no_op(trained, base, prefs):
    before = (trained / "manifest.json").read_bytes()
    r = _rm(base, prefs, trained)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (trained / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_score_writes_every_row_back_with_its_score(trained, tmp_path):
    rows = []
    for i, p in enumerate(synthetic_pairs()[:10]):
        rows.append({"id": f"good{i}", "prompt": p["prompt"], "response": p["chosen"], "meta": {"k": i}})
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": p["prompt"]},
                    {"role": "assistant", "content": p["rejected"]},
                ]
            }
        )
    data = tmp_path / "responses.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"text": "no prompt"}\n')
    out = tmp_path / "scored"
    r = llmctl("score", str(trained), str(data), "--out", str(out), "--normalise")
    assert r.returncode == 0, r.stderr[-3000:]
    m = artifacts.Manifest.read(out).metrics
    assert (m["input"], m["scored"], m["rejected"], m["reasons"]) == (21, 20, 1, {"missing_column": 1})
    from llmctl.formats import documents
    from llmctl.rm.scorer import Scorer

    got = list(documents.read_shards(out / "data"))
    assert [{k: v for k, v in g.items() if k not in ("score", "score_norm")} for g in got] == rows
    want = Scorer.load(trained).score([(p["prompt"], p["chosen"]) for p in synthetic_pairs()[:1]])
    assert got[0]["score"] == pytest.approx(want[0], abs=1e-5)
    good = [g["score"] for g in got if "id" in g]
    bad = [g["score"] for g in got if "id" not in g]
    assert sum(a > b for a, b in zip(good, bad, strict=True)) >= 9
    assert all("score_norm" in g for g in got)
    before = (out / "manifest.json").read_bytes()
    again = llmctl("score", str(trained), str(data), "--out", str(out), "--normalise")
    assert again.returncode == 0 and (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_the_lm_regulariser_adds_exactly_its_weight_times_the_lm_loss(base, tmp_path):
    """weight 0 = TRL's plain RewardTrainer loss; weight w adds w * the causal LM's mean next-token
    loss on the chosen responses' tokens (computed here independently, example by example)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from llmctl.rm import trainer as rt
    from llmctl.rm.data import messages
    from llmctl.rm.scorer import render_ids

    tok = AutoTokenizer.from_pretrained(base)
    examples = []
    for p in synthetic_pairs()[:4]:
        prompt = messages(p["prompt"], "user", "prompt")
        chosen, start = render_ids(tok, prompt, messages(p["chosen"], "assistant", "chosen"))
        rejected, _ = render_ids(tok, prompt, messages(p["rejected"], "assistant", "rejected"))
        examples.append({"chosen_ids": chosen, "rejected_ids": rejected, "chosen_start": start})

    def loss(weight, plain=False):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        model.config.pad_token_id = tok.pad_token_id
        args = rt.RewardConfig(
            output_dir=str(tmp_path / "o"), report_to=[], use_cpu=True, per_device_train_batch_size=4
        )
        ds = datasets.Dataset.from_list(examples)
        if plain:
            trainer = rt.RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        else:
            trainer = rt.RegularisedRewardTrainer(
                model=model, args=args, train_dataset=ds, processing_class=tok, lm_weight=weight,
                data_collator=rt.PairCollator(pad_token_id=tok.pad_token_id),
            )  # fmt: skip
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, dict(batch)).item()

    lm = AutoModelForCausalLM.from_pretrained(base).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e["chosen_ids"]])
            logp = torch.log_softmax(lm(ids).logits[0, :-1].float(), -1)
            targets = ids[0, 1:]
            for t in range(e["chosen_start"] - 1, len(e["chosen_ids"]) - 1):
                total -= logp[t, targets[t]].item()
                count += 1
    lm_loss = total / count
    assert lm_loss > 1.0  # an untrained LM: the term is not negligible
    plain, zero, half, two = loss(0, plain=True), loss(0.0), loss(0.5), loss(2.0)
    assert zero == pytest.approx(plain, abs=1e-6)
    assert half - zero == pytest.approx(0.5 * lm_loss, rel=1e-4)
    assert two - zero == pytest.approx(2.0 * lm_loss, rel=1e-4)


@pytest.mark.slow
def test_lm_weight_trains_and_logs_the_lm_loss(base, prefs, tmp_path):
    out = tmp_path / "rm"
    r = _rm(base, prefs, out, "--max-steps", "6", "--set", "train.lm_weight=0.5")
    assert r.returncode == 0, r.stderr[-4000:]
    rows = (out / "loss_curve.csv").read_text().splitlines()[1:]
    lm = [float(x.split(",")[4]) for x in rows]
    assert len(lm) == 3 and all(v > 0 for v in lm)


@pytest.mark.slow
def test_two_data_parallel_ranks_learn_the_same_preference(base, prefs, trained, tmp_path):
    """--nproc 2 at half the per-rank batch: the same data, split and global batches (gloo ranks
    through torchrun, llmctl.ranks); the held-out accuracy clears 0.9 as the one-process run does."""
    out = tmp_path / "rm2"
    r = _rm(base, prefs, out, "--nproc", "2", "--set", "train.batch_size=4")
    assert r.returncode == 0, r.stderr[-4000:]
    got, want = artifacts.Manifest.read(out), artifacts.Manifest.read(trained)
    assert got.config["nproc"] == 2
    g, w = got.metrics, want.metrics
    assert (g["train_pairs"], g["held_out_pairs"], g["steps"]) == (w["train_pairs"], w["held_out_pairs"], 40)
    assert g["held_out_accuracy_before"] == w["held_out_accuracy_before"]  # the same seeded score head
    assert g["held_out_accuracy_after"] >= 0.9
    assert (out / "hf" / "model.safetensors").is_file() and (out / "reward.json").is_file()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(base, prefs, trained, tmp_path):
    out = tmp_path / "rm"
    cmd = [
        "rm", str(base), f"pairs={prefs / 'pairs.jsonl'}",
        f"rankings={prefs / 'rankings.jsonl'}", f"ratings={prefs / 'ratings.jsonl'}",
        "--out", str(out), "--config", str(RECIPE),
    ]  # fmt: skip
    # placed, not timed: right after the trainer wrote checkpoint-20's trainer_state.json, its last file
    assert killed("transformers.trainer_callback:TrainerState.save_to_json", "after", 2, *cmd) == -9
    assert not (out / "manifest.json").exists()
    r = llmctl(*cmd, "--resume")
    assert r.returncode == 0, r.stderr[-4000:]
    got, want = artifacts.Manifest.read(out).metrics, artifacts.Manifest.read(trained).metrics
    assert got["resumed_from"] == "checkpoint-20"
    assert got["final_train_loss"] == pytest.approx(want["final_train_loss"], abs=1e-4)
    assert got["held_out_accuracy_after"] == want["held_out_accuracy_after"]
    assert got["held_out_margin_after"] == pytest.approx(want["held_out_margin_after"], abs=1e-4)


@pytest.mark.slow
def test_lora_trains_the_adapter_and_score_head_only(base, prefs, tmp_path):
    out = tmp_path / "lora"
    r = _rm(base, prefs, out, "--lora", "--max-steps", "20", "--set", "lora.r=4", "--set", "train.lr=0.005")
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["lora"] is True and m["base_weights_changed"] == 0
    assert m["held_out_accuracy_after"] > m["held_out_accuracy_before"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    from safetensors.torch import load_file

    after = load_file(out / "hf" / "model.safetensors")
    before = load_file(base / "model.safetensors")
    assert "score.weight" in after and after["score.weight"].shape[0] == 1
    untouched = [
        k for k in before if k in after and not any(t in k for t in ("q_proj", "k_proj", "v_proj", "o_proj"))
    ]
    assert untouched and all(torch.equal(before[k], after[k]) for k in untouched)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("columns", r"bad.jsonl:1: not a preference record.*it has: answer, question"),
        ("ranking", r"bad.jsonl:2: key 'ranking' \[1, 1\] repeats index 1"),
        ("head", "model_type 'vit' cannot take a classification head"),
        ("lora", "lora.target_modules: w_nope not in the model"),
        ("held_out", "data.held_out=500 prompts leaves none for training"),
    ],
)
def test_bad_input_is_exit_2_before_training(base, prefs, tmp_path, case, match):
    model, data, extra = str(base), f"pairs={prefs / 'pairs.jsonl'}", []
    bad = tmp_path / "bad.jsonl"
    if case == "columns":
        bad.write_text('{"question": "q", "answer": "a"}\n')
        data = str(bad)
    elif case == "ranking":
        bad.write_text(
            json.dumps({"prompt": "q", "responses": ["a", "b"], "ranking": [0, 1]})
            + "\n"
            + json.dumps({"prompt": "q", "responses": ["a", "b"], "ranking": [1, 1]})
            + "\n"
        )
        data = str(bad)
    elif case == "head":
        (tmp_path / "vit").mkdir()
        (tmp_path / "vit" / "config.json").write_text('{"model_type": "vit"}')
        model = str(tmp_path / "vit")
    elif case == "lora":
        extra = ["--lora", "--set", "lora.target_modules=[w_nope]"]
    elif case == "held_out":
        extra = ["--set", "data.held_out=500"]
    r = llmctl("rm", model, data, "--out", str(tmp_path / "out"), "--config", str(RECIPE), *extra)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert re.search(match, r.stderr), r.stderr[-2000:]
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not artifacts.staging_dir(tmp_path / "out").exists()


@pytest.mark.slow
def test_criteria_train_one_model_each_and_a_weighted_combined_scorer(base, prefs, tmp_path):
    rows = synthetic_pairs()
    helpful, honest = tmp_path / "helpful.jsonl", tmp_path / "honest.jsonl"
    helpful.write_text("".join(json.dumps(r) + "\n" for r in rows[:120]))
    honest.write_text("".join(json.dumps(r) + "\n" for r in rows[120:]))
    recipe = tmp_path / "crit.yaml"
    recipe.write_text(RECIPE.read_text() + "criteria:\n  helpful: {weight: 2.0}\n  honest: {weight: 0.5}\n")
    out = tmp_path / "rm"
    r = llmctl(
        "rm", str(base), "--criterion", f"helpful={helpful}", "--criterion", f"honest={honest}",
        "--out", str(out), "--config", str(recipe), "--max-steps", "8", "--set", "data.held_out=8",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert set(m["criteria"]) == {"helpful", "honest"} and m["weights"] == {"helpful": 2.0, "honest": 0.5}
    assert m["criteria"]["helpful"]["train_pairs"] + m["criteria"]["helpful"]["held_out_pairs"] <= 120
    for name in ("helpful", "honest"):
        assert (out / "criteria" / name / "hf" / "model.safetensors").is_file()
        assert m["criteria"][name]["steps"] == 8
    spec = json.loads((out / "reward.json").read_text())
    assert spec["combined"]["honest"] == {"path": "criteria/honest", "weight": 0.5}
    from llmctl.rm.scorer import CombinedScorer, Scorer

    combined = Scorer.load(out)
    assert isinstance(combined, CombinedScorer)
    items = [("Hi!", "Hello there."), ("Hi!", corrupted("Hello there."))]
    parts = {n: Scorer.load(out / "criteria" / n) for n in ("helpful", "honest")}
    want = [
        sum(w * (parts[n].score(items)[i] - parts[n].mean) / parts[n].std for n, w in m["weights"].items())
        for i in range(2)
    ]
    assert combined.score(items) == pytest.approx(want, abs=1e-5)
    scored = tmp_path / "scored"
    data = tmp_path / "resp.jsonl"
    data.write_text(json.dumps({"prompt": "Hi!", "response": "Hello there."}) + "\n")
    r = llmctl("score", str(out), str(data), "--out", str(scored))
    assert r.returncode == 0, r.stderr[-3000:]
    from llmctl.formats import documents

    (row,) = documents.read_shards(scored / "data")
    assert row["score"] == pytest.approx(want[0], abs=1e-5)
    bad = llmctl("rm", str(base), f"pairs={prefs / 'pairs.jsonl'}", "--criterion", f"x={helpful}",
                 "--out", str(tmp_path / "both"), "--config", str(RECIPE))  # fmt: skip
    assert bad.returncode == 2 and "not both" in bad.stderr
