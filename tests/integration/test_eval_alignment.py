"""`llmctl eval` for aligned models, end to end on tiny models (issue 20): a tiny sft whose data
quotes two eval items marks exactly those two, attributed to sft (its lineage's n-gram index);
true/false tasks are scored by mc1 / mc2; a reward model from `llmctl rm` judges the generation
answers of two models (mean reward, pairwise win rate with a bootstrap interval); a judge that is
not a reward model is exit 2 before scoring. One eval run, shared by the tests of this module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl.eval import mc
from tests.conftest import ASSETS, REPO, llmctl
from tests.fixtures.models import tiny_chat_llama

CHATS = ASSETS / "sft" / "chitchat-240.jsonl"
QUOTES = REPO / "data" / "eval" / "sotu-quotes.jsonl"
QUOTED = (3, 7)  # the sotu-quotes items the sft data quotes
FEW = ["--set", "train.max_steps=2", "--set", "data.held_out=2", "--set", "train.save_steps=100"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("align")
    base = tiny_chat_llama(d / "base")
    chats = CHATS.read_text().splitlines()[:24]
    (d / "chat.jsonl").write_text("\n".join(chats) + "\n")
    items = [json.loads(x) for x in QUOTES.read_text().splitlines()]
    quoting = [
        {
            "messages": [
                {"role": "user", "content": "Quote a State of the Union address."},
                {"role": "assistant", "content": items[i]["question"].split(": ", 1)[1]},
            ]
        }
        for i in QUOTED
    ]
    (d / "quotes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in quoting))
    sft = d / "sft"
    r = llmctl(
        "sft", str(base), f"chat={d / 'chat.jsonl'}", f"quotes={d / 'quotes.jsonl'}", "--out", str(sft),
        "--config", str(REPO / "recipes/sft/tiny.yaml"), *FEW,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    pairs = []
    for line in chats:
        msgs = json.loads(line)["messages"]
        user = next(m["content"] for m in msgs if m["role"] == "user")
        answer = next(m["content"] for m in msgs if m["role"] == "assistant")
        pairs.append(
            {"prompt": user, "chosen": answer, "rejected": " ".join(w[::-1] for w in answer.split())}
        )
    (d / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    rm = d / "rm"
    r = llmctl(
        "rm", str(base), f"pairs={d / 'pairs.jsonl'}", "--out", str(rm),
        "--config", str(REPO / "recipes/rm/tiny.yaml"), *FEW,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    ev = d / "ev"
    r = llmctl(
        "eval", str(base), str(sft), "--out", str(ev), "--tasks", "sotu-quotes,harmless-safety",
        "--judge", str(rm), "--max-new-tokens", "4",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return {"base": base, "sft": sft, "rm": rm, "ev": ev}


def results(runs) -> dict:
    return json.loads((runs["ev"] / "results.json").read_text())


def item_rows(runs, model: str, task: str) -> list[dict]:
    return [json.loads(x) for x in (runs["ev"] / "items" / model / f"{task}.jsonl").read_text().splitlines()]


def test_sft_data_quoting_two_items_marks_exactly_those_attributed_to_sft(runs):
    for stage in ("sft", "rm"):  # every post-training stage records its training text's index
        assert (runs[stage] / "ngram_index.json").is_file() and (runs[stage] / "ngram_index.npy").is_file()
    res = results(runs)
    assert [s["label"] for s in res["models"]["sft"]["contamination_indexes"]] == ["sft"]
    rows = item_rows(runs, "sft", "sotu-quotes")
    assert [r["index"] for r in rows if r["contaminated"]] == list(QUOTED)
    assert all(r["contaminated_by"] == (["sft"] if r["index"] in QUOTED else []) for r in rows)
    s = res["scores"]["sft"]["sotu-quotes"]
    assert (s["clean"]["n"], s["contaminated"]["n"], s["contaminated_by"]) == (10, 2, {"sft": 2})
    assert not any(r["contaminated"] for r in item_rows(runs, "sft", "harmless-safety"))
    assert "clean" not in res["scores"]["base"]["sotu-quotes"]  # a plain directory: no lineage, no index
    report = (runs["ev"] / "report.md").read_text()
    assert "| sft | sotu-quotes | contains |" in report and "| sft: 2 |" in report
    assert [r["index"] for r in s["contaminated_items"]] == list(QUOTED)
    assert f"- sft · sotu-quotes · item {QUOTED[0]} (sotu-quotes.jsonl:{QUOTED[0] + 1}): sft" in report


def test_true_false_task_is_scored_by_mc1_and_mc2(runs):
    res = results(runs)
    assert res["tasks"]["harmless-safety"]["metrics"] == ["mc2", "mc1"]
    for model in ("base", "sft"):
        rows = item_rows(runs, model, "harmless-safety")
        assert len(rows) == 16
        for r in rows:
            assert r["mc2"] == pytest.approx(mc.mc2(r["loglikelihoods"], r["true_answers"]))
            assert r["mc1"] == mc.mc1(r["loglikelihoods"], r["true_answers"])
        s = res["scores"][model]["harmless-safety"]["all"]
        assert s["mc2"]["value"] == pytest.approx(sum(r["mc2"] for r in rows) / 16)
        assert 0 < s["mc2"]["value"] < 1 and s["mc1"]["stderr"] is not None


def test_reward_model_judges_generation_answers_with_win_rates(runs):
    from llmctl.rm.scorer import Scorer

    j = results(runs)["judge"]
    assert j["judges"]["rm"]["kind"] == "reward model"
    assert set(j["rewards"]["rm"]["base"]) == {"sotu-quotes"}  # generation tasks only
    per_item = [json.loads(x) for x in (runs["ev"] / "judge" / "rm.jsonl").read_text().splitlines()]
    for model in ("base", "sft"):
        rewards = [r["reward"] for r in per_item if r["model"] == model]
        got = j["rewards"]["rm"][model]["sotu-quotes"]
        assert got["n"] == 12 and got["value"] == pytest.approx(sum(rewards) / 12)
    (w,) = j["win_rates"]["rm"]["sotu-quotes"]
    assert (w["model"], w["opponent"], w["n"]) == ("base", "sft", 12)
    assert w["wins"] + w["ties"] + w["losses"] == 12
    assert w["win_rate"] == pytest.approx((w["wins"] + 0.5 * w["ties"]) / 12)
    assert w["ci95"][0] <= w["win_rate"] <= w["ci95"][1]
    # the judge read the item's prompt and the answer as a chat, as `llmctl score` would
    first = item_rows(runs, "sft", "sotu-quotes")[0]
    quote = json.loads(QUOTES.read_text().splitlines()[0])["question"]
    answer = first["prediction"].strip() or "(no answer)"
    (expect,) = Scorer.load(runs["rm"], device="cpu").score([(f"{quote}\nAnswer:", answer)])
    assert next(r for r in per_item if r["model"] == "sft")["reward"] == pytest.approx(expect, abs=1e-4)
    report = (runs["ev"] / "report.md").read_text()
    assert "## Reward-model judge" in report and "| rm | sotu-quotes | base | sft |" in report


def test_a_judge_that_is_not_a_reward_model_is_exit_2_before_scoring(runs, tmp_path):
    from typer.testing import CliRunner

    from llmctl.cli import app

    out = tmp_path / "ev"
    args = [
        "eval",
        str(runs["base"]),
        "--out",
        str(out),
        "--tasks",
        "sotu-quotes",
        "--judge",
        str(runs["sft"]),
    ]
    # in-process: the check loads no model and needs no fresh interpreter
    r = CliRunner().invoke(app, args, env={"COLUMNS": "1000", "LLMCTL_QUIET": "1"})
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"--judge {runs['sft']}: not a reward model" in r.output
    assert not out.exists()
