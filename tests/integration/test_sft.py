"""`llmctl sft` end to end on a tiny chat model: the held-out assistant loss goes down, every
record is accounted for, LoRA changes only the adapter and merges exactly, the labels are exactly
the assistant's tokens, a killed run resumes to the same losses, bad input is exit 2."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch

from llmctl import artifacts
from tests.conftest import ASSETS, REPO, llmctl
from tests.fixtures.kill import killed
from tests.fixtures.models import SMOL_TEMPLATE, tiny_chat_llama

CHATS = ASSETS / "sft" / "chitchat-240.jsonl"
RECIPE = REPO / "recipes" / "sft" / "tiny.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_chat_llama(tmp_path_factory.mktemp("sft") / "base")


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """Good and bad records of every kind: 6 usable, 5 rejected."""
    good = [json.loads(line) for line in CHATS.read_text().splitlines()[:3]]
    rows = [
        json.dumps(good[0]),
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}),
        json.dumps({"prompt": "Name a colour.", "completion": "Blue."}),
        json.dumps({"instruction": "Say yes.", "input": "", "output": "Yes."}),
        json.dumps(good[1]),
        json.dumps(good[2]),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "alone"}]}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}),
        json.dumps({"text": "a document, not an instruction"}),
    ]
    path = tmp_path_factory.mktemp("messy") / "messy.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tuned(base, messy, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "sft"
    r = llmctl(
        "sft", str(base), f"chat={CHATS}", f"messy={messy}", "--out", str(out), "--config", str(RECIPE)
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_full_tune_lowers_the_held_out_assistant_loss(tuned):
    m = artifacts.Manifest.read(tuned).metrics
    assert m["steps"] == 30
    assert m["held_out_loss_after"] < m["held_out_loss_before"] - 0.5
    assert m["final_train_loss"] < m["first_train_loss"]
    assert 0.2 < m["label_fraction"] < 0.95  # the template and user turns carry no labels
    assert m["tokens_trained"] > 0 and m["tokens_per_s"] > 0
    chat, messy = m["sources"]["chat"], m["sources"]["messy"]
    assert (chat["input"], chat["kept"], chat["rejected"]) == (240, 240, 0)
    assert (messy["input"], messy["kept"], messy["rejected"]) == (11, 6, 5)
    assert messy["reasons"] == {
        "bad_record": 1,
        "no_assistant_turn": 1,
        "unknown_role": 1,
        "empty_content": 1,
        "unknown_format": 1,
    }
    rejected = list(artifacts_rows(tuned / "rejected"))
    assert sorted(r["reason"] for r in rejected) == sorted(
        ["bad_record", "no_assistant_turn", "unknown_role", "empty_content", "unknown_format"]
    )
    examples = json.loads((tuned / "examples.json").read_text())
    assert sum(examples["sft"].values()) == 240 + 6 - 16  # all but the 16 held out
    assert (tuned / "loss_curve.png").stat().st_size > 0


def artifacts_rows(directory):
    from llmctl.formats import documents

    yield from documents.read_shards(directory)


def test_the_tuned_model_loads_offline_and_chats(tuned):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tuned / "hf", local_files_only=True, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(tuned / "hf", local_files_only=True)
    assert "{% generation %}" in tok.chat_template
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hey"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_a_second_run_is_a_no_op(tuned, base, messy):
    before = (tuned / "manifest.json").read_bytes()
    r = llmctl(
        "sft", str(base), f"chat={CHATS}", f"messy={messy}", "--out", str(tuned), "--config", str(RECIPE)
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tuned / "manifest.json").read_bytes() == before


def test_lora_changes_only_the_adapter_and_merges_exactly(base, tmp_path):
    out = tmp_path / "lora"
    r = llmctl(
        "sft", str(base), f"chat={CHATS}", "--out", str(out), "--config", str(RECIPE), "--lora",
        "--max-steps", "10", "--set", "lora.r=4", "--set", "train.lr=0.005",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out).metrics
    assert m["lora"] is True and m["base_weights_changed"] == 0
    assert m["held_out_loss_after"] < m["held_out_loss_before"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    ids = torch.randint(4, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    base_model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    with torch.no_grad():
        plain = base_model(ids).logits
        adapted = PeftModel.from_pretrained(base_model, out / "adapter").eval()(ids).logits
        merged_model = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True).eval()
        merged = merged_model(ids).logits
    assert (merged - adapted).abs().max().item() <= 1e-4
    assert (merged - plain).abs().max().item() > 1e-3  # the adapter did something
    before, after = load_file(base / "model.safetensors"), load_file(out / "hf" / "model.safetensors")
    untouched = [k for k in before if not any(t in k for t in ("q_proj", "k_proj", "v_proj", "o_proj"))]
    assert untouched and all(torch.equal(before[k], after[k]) for k in untouched)


@pytest.mark.parametrize("template", ["smollm2", "tokenize"])
def test_labels_are_exactly_the_assistant_tokens(tmp_path, template):
    from llmctl import hf as chat

    model_dir = tiny_chat_llama(
        tmp_path / "m", chat_template=SMOL_TEMPLATE if template == "smollm2" else chat.CHATML_TEMPLATE
    )
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = chat.training_template(tok)
    convo = [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris, of course."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]
    args = SFTConfig(
        output_dir=str(tmp_path / "o"), assistant_only_loss=True, per_device_train_batch_size=1,
        report_to=[], use_cpu=True, max_length=256,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=datasets.Dataset.from_list([{"messages": convo}]),
        processing_class=tok,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"][0]
    labelled = batch["input_ids"][0][labels != -100].tolist()
    want = "".join(m["content"] + "<|im_end|>" for m in convo if m["role"] == "assistant")
    assert tok.decode(labelled) == want
    answer_ids = sum(
        (tok(m["content"] + "<|im_end|>")["input_ids"] for m in convo if m["role"] == "assistant"), []
    )
    assert len(labelled) == len(answer_ids)  # nothing else: not the system, user or template tokens
    assert (labels != -100).sum().item() < len(batch["input_ids"][0]) / 2


# the trainer writes trainer_state.json last in a checkpoint: killed right after the 2nd one, the run
# resumes from checkpoint-20; killed right before it, checkpoint-20 is half written and resume takes 10
SAVE_STATE = "transformers.trainer_callback:TrainerState.save_to_json"


@pytest.mark.parametrize(("when", "resumes_from"), [("after", "checkpoint-20"), ("before", "checkpoint-10")])
def test_a_killed_run_resumes_to_the_same_losses(base, tuned, messy, tmp_path, when, resumes_from):
    out = tmp_path / "sft"
    cmd = [
        "sft", str(base), f"chat={CHATS}", f"messy={messy}",
        "--out", str(out), "--config", str(RECIPE), "--set", "train.save_steps=10",
    ]  # fmt: skip
    assert killed(SAVE_STATE, when, 2, *cmd) == -9
    assert not (out / "manifest.json").exists()
    r = llmctl(*cmd, "--resume")
    assert r.returncode == 0, r.stderr[-4000:]
    got, want = artifacts.Manifest.read(out).metrics, artifacts.Manifest.read(tuned).metrics
    assert got["stages"][0]["resumed_from"] == resumes_from
    assert got["final_train_loss"] == pytest.approx(want["final_train_loss"], abs=1e-4)
    assert got["held_out_loss_after"] == pytest.approx(want["held_out_loss_after"], abs=1e-4)
    # TRL counts trained tokens from zero in each train() call; the checkpoint's trainer_state.json
    # carries the count (a file llmctl wrote after the checkpoint was missing when the kill fell between)
    assert got["tokens_trained"] == want["tokens_trained"] > 0


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("model", "model .*(config|load)"),
        ("no_records", "no usable records"),
        ("template", "column.*answer.*not in the data"),
        ("lora", "lora.target_modules: w_nope not in the model"),
        ("max_length", "data.max_length=16 is not above"),
    ],
)
def test_bad_input_is_exit_2_before_training(base, tmp_path, case, match):
    data = f"chat={CHATS}"
    extra: list[str] = []
    model = str(base)
    if case == "model":
        (tmp_path / "empty").mkdir()
        model = str(tmp_path / "empty")
    elif case == "no_records":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "x"}\n{"messages": []}\n')
        data = f"bad={bad}"
    elif case == "template":
        rows = tmp_path / "rows.jsonl"
        rows.write_text('{"question": "2+2?", "label": 4}\n')
        tpl = tmp_path / "t.yaml"
        tpl.write_text("templates: ['Q: {question}']\nanswer: answer\n")
        data = f"rows={rows}"
        extra = ["--set", f"data.sources.rows.template={tpl}"]
    elif case == "lora":
        extra = ["--lora", "--set", "lora.target_modules=[w_nope]"]
    elif case == "max_length":
        extra = ["--set", "data.max_length=16"]
    r = llmctl("sft", model, data, "--out", str(tmp_path / "out"), "--config", str(RECIPE), *extra)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr

    assert re.search(match, r.stderr), r.stderr[-2000:]
    assert not (tmp_path / "out" / "manifest.json").exists()
