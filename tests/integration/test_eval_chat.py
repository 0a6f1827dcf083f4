"""`llmctl eval --chat` (issue 20): conversations built as lm-eval builds them (a tiny ChatML model,
fast), exit 2 without a template, and the slow parity with lm-evaluation-harness 0.4.13's
`--apply_chat_template --fewshot_as_multiturn` on SmolLM2-135M-Instruct: the same contexts,
log-likelihoods and accuracies on capitals, the same greedy answers on arith."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.fixtures.models import tiny_chat_llama

TASKS = REPO / "src" / "llmctl" / "eval" / "tasks_data"


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return tiny_chat_llama(tmp_path_factory.mktemp("chat") / "model")


def test_conversation_turns_system_and_demo_templates(chat_model):
    from transformers import AutoTokenizer

    from llmctl.eval import chat
    from llmctl.eval.tasks import load_tasks

    tok = AutoTokenizer.from_pretrained(chat_model)
    capitals, cot = load_tasks(
        ["capitals", "arith-cot"], limit=4, num_fewshot=None, seed=1, text_field="text"
    )
    chat.configure([capitals, cot], True, None)
    # capitals is zero-shot: one user turn, and SmolLM's template adds its default system turn
    (plain,) = chat.apply(capitals, tok).items[:1]
    assert plain.context == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nQuestion: What is the capital of France?\nAnswer:<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert plain.choices == ["Ottawa", "Vienna", "Paris", "Stockholm"]  # no target delimiter
    # arith-cot: 3 demonstrations from its own file, split at the prompt; --system replaces the default
    chat.configure([cot], True, "Be brief.")
    item = chat.apply(cot, tok).items[0]
    msgs = chat.messages(cot.items[0], cot)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"] * 1 + ["user", "assistant"] * 2 + [
        "user"
    ]
    shot = cot.items[0].shots[0]
    assert msgs[1]["content"] == shot.prompt and msgs[1]["content"].endswith("\nAnswer:")
    assert msgs[2]["content"] == f"{shot.doc['rationale']} The answer is {shot.doc['answer']}."
    assert item.context.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQuestion:")
    assert item.context.endswith(f"{cot.items[0].prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert cot.describe()["chat"] is True and cot.describe()["system"] == "Be brief."
    capitals.chat = False
    assert chat.apply(capitals, tok) is capitals  # a task without chat is untouched


def test_chat_without_a_template_is_exit_2(chat_model, tmp_path):
    import shutil

    from llmctl.errors import UserError
    from llmctl.eval.tasks import load_tasks

    plain = tmp_path / "plain"
    shutil.copytree(chat_model, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    bad = tmp_path / "bad"
    r = llmctl("eval", str(plain), "--out", str(bad), "--tasks", "capitals", "--chat")
    assert r.returncode == 2 and "has no chat template" in r.stderr and "--chat" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not bad.exists() and not artifacts.staging_dir(bad).exists()
    (tmp_path / "t.jsonl").write_text('{"q": "x", "answer": "y"}\n')
    (tmp_path / "t.yaml").write_text('type: generation\ndata: t.jsonl\nprompt: "{q}"\nchat: "yes"\n')
    with pytest.raises(UserError, match="t.yaml: 'chat' is true or false"):
        load_tasks([str(tmp_path / "t.yaml")], limit=None, num_fewshot=None, seed=1, text_field="text")


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_chat_matches_lm_eval(tmp_path):
    """SmolLM2-135M-Instruct, 2-shot multi-turn with a system prompt: capitals (multiple choice)
    and arith (greedy generation) through llmctl and through lm-eval, one run each."""
    from llmctl.eval.tasks import load_tasks
    from tests.fixtures.eval_chat_anchor import lm_eval_chat
    from tests.fixtures.models import smollm2

    model, limit, shots, system, tokens = smollm2(), 4, 2, "Answer briefly.", 10
    out = tmp_path / "ev"
    r = llmctl(
        "eval", str(model), "--out", str(out), "--tasks", "capitals,arith", "--chat", "--system", system,
        "--limit", str(limit), "--num-fewshot", str(shots), "--max-new-tokens", str(tokens), timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    tasks = load_tasks(["capitals", "arith"], limit=limit, num_fewshot=shots, seed=1234, text_field="text")
    demos = {t.name: [[s.doc for s in it.shots] for it in t.items] for t in tasks}
    theirs = lm_eval_chat(
        model,
        [(TASKS / "capitals.yaml", demos["capitals"]), (TASKS / "arith.yaml", demos["arith"])],
        limit=limit, num_fewshot=shots, system=system, max_gen_toks=tokens, until=["\n\n"],
    )  # fmt: skip

    def items(task: str) -> list[dict]:
        return [
            json.loads(x) for x in (out / "items" / model.name / f"{task}.jsonl").read_text().splitlines()
        ]

    res = json.loads((out / "results.json").read_text())
    assert res["tasks"]["capitals"]["chat"] is True and res["tasks"]["arith"]["system"] == system
    ours = res["scores"][model.name]["capitals"]["all"]
    mine = [x for it in items("capitals") for x in it["loglikelihoods"]]
    ref = [x for row in theirs["capitals"]["loglikelihoods"] for x in row]
    assert len(mine) == len(ref) == 4 * limit
    diff = max(abs(a - b) for a, b in zip(mine, ref, strict=True))
    print(f"max |Δ loglik| vs lm-eval (chat, 2-shot multiturn): {diff:.2e}")
    assert diff < 1e-4
    assert ours["acc"]["value"] == theirs["capitals"]["acc"]
    assert ours["acc_norm"]["value"] == theirs["capitals"]["acc_norm"]
    assert theirs["capitals"]["contexts"][0].count("<|im_start|>assistant\n") == shots + 1
    answers = [it["prediction"] for it in items("arith")]
    assert answers == theirs["arith"]["answers"]
    assert any(a.strip() for a in answers)  # it did answer something
