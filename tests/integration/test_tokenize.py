"""`llmctl tokenize`: lossless BPE, megatron-core token data that megatron-core reads back and
samples from, mixtures, determinism, transformers parity, chat template, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from llmctl import artifacts, config
from llmctl.tokenize import TokenizeConfig, run
from tests.conftest import llmctl
from tests.fixtures import corpus

TINY = ["tokenizer.vocab_size=600", "tokenizer.min_frequency=1"]


def write_docs(path: Path, texts: list[str]) -> Path:
    with open(path, "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"{path.stem}-{i}", "text": t}) + "\n")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    texts = corpus.prose(40)
    web = write_docs(root / "web.jsonl", texts[:30])
    code = write_docs(root / "code.jsonl", [t.upper() for t in texts[30:]])
    cfg = config.load(
        TokenizeConfig,
        None,
        [*TINY, "workers=1"],
        {
            "sources": {
                "web": {"paths": [str(web)], "weight": 0.7},
                "code": {"paths": [str(code)], "weight": 0.3},
            }
        },
    )
    run(config.with_run(cfg, out=root / "out"))
    return root, texts


def test_bpe_round_trips_arbitrary_text(built):
    root, _ = built
    tok = Tokenizer.from_file(str(root / "out" / "tokenizer" / "tokenizer.json"))
    rng = random.Random(0)
    samples = [
        "emoji 🤖🎉👩‍👩‍👧 and flags 🇩🇪🇯🇵",
        "中文字符和日本語のテキスト、한국어",
        "combining: e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937",
        "control \x00\x01\x07\t\r\n\x1b[31m and \u200b\ufeff zero-width",
        "x" * 5000 + "Donaudampfschifffahrtsgesellschaftskapitän",
        "  leading and trailing spaces  \n\n",
        "".join(chr(rng.randint(0x20, 0x2FFFF)) for _ in range(2000)).encode("utf-8", "replace").decode(),
    ]
    for text in samples:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text


def test_token_data_matches_per_document_encoding(built):
    from llmctl.megatron import datasets

    root, texts = built
    out = root / "out"
    tok = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    eod = tok.token_to_id("<|endoftext|>")
    ds = datasets.IndexedDataset(str(out / "data" / "web_text_document"))
    assert len(ds) == 30 and len(ds.document_indices) - 1 == 30  # one document per input record
    for i, text in enumerate(texts[:30]):
        want = tok.encode(text, add_special_tokens=False).ids + [eod]
        assert ds[i].tolist() == want
    assert ds[0].dtype == np.uint16
    m = artifacts.Manifest.read(out).metrics
    web = m["sources"]["web"]
    assert web["documents"] == 30
    assert web["tokens"] == sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in texts[:30])
    assert web["bytes_per_token"] == pytest.approx(web["bytes"] / web["tokens"], rel=1e-3)
    blend = json.loads((out / "blend.json").read_text())
    assert blend["blend"] == [["data/web_text_document", "data/code_text_document"], [0.7, 0.3]]
    assert blend["data_path"] == ["0.7", "data/web_text_document", "0.3", "data/code_text_document"]


def test_gpt_dataset_samples_the_blend(built, tmp_path):
    from llmctl.megatron import datasets

    root, _ = built
    out = root / "out"
    blend = json.loads((out / "blend.json").read_text())
    prefixes = [str(out / p) for p in blend["blend"][0]]
    train, valid, _ = datasets.build_gpt_datasets(
        (prefixes, blend["blend"][1]),
        sequence_length=64,
        samples=(200, 20, 0),
        split="90,10,0",
        seed=1,
        eod=blend["eod"],
        pad=blend["pad"],
        vocab_size=blend["vocab_size"],
        cache=tmp_path / "cache",
    )
    assert len(train) >= 200 and len(valid) >= 20
    sample = train[0]
    assert sample["tokens"].shape[0] == 64 and int(sample["tokens"].max()) < blend["vocab_size"]
    per_source = np.bincount(train.dataset_index[:200], minlength=2) / 200
    assert abs(per_source[0] - 0.7) < 0.1  # the 0.7 / 0.3 mixture


def test_transformers_loads_it_with_the_same_ids_and_the_chat_template(built):
    from transformers import AutoTokenizer

    root, texts = built
    tdir = root / "out" / "tokenizer"
    hf = AutoTokenizer.from_pretrained(tdir, local_files_only=True)
    tok = Tokenizer.from_file(str(tdir / "tokenizer.json"))
    for t in texts[:5] + ["naïve café 🤖 1234"]:
        assert hf.encode(t, add_special_tokens=False) == tok.encode(t, add_special_tokens=False).ids
    assert hf.eos_token == "<|endoftext|>" and hf.pad_token == "<|pad|>"
    messages = [
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "Four."},
    ]
    enc = hf.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    answer = hf.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert answer == "Four.<|im_end|>"  # exactly the assistant's turn is trainable
    assert hf.convert_tokens_to_ids("<|im_start|>") == tok.token_to_id("<|im_start|>")


def test_same_bytes_whatever_the_workers(built, tmp_path):
    root, _ = built
    outs = []
    for w in (1, 2):
        r = llmctl(
            "tokenize",
            str(root / "web.jsonl"),
            "--out",
            str(tmp_path / f"w{w}"),
            "--workers",
            str(w),
            "--tokenizer",
            str(root / "out" / "tokenizer"),
            "--set",
            "chunk_size=7",
        )
        assert r.returncode == 0, r.stderr
        outs.append(tmp_path / f"w{w}")
    for suffix in ("bin", "idx"):
        a = (outs[0] / "data" / f"corpus_text_document.{suffix}").read_bytes()
        assert a == (outs[1] / "data" / f"corpus_text_document.{suffix}").read_bytes()


def test_trained_tokenizer_is_deterministic(built, tmp_path):
    root, _ = built
    for name in ("a", "b"):
        r = llmctl(
            "tokenize",
            str(root / "web.jsonl"),
            "--out",
            str(tmp_path / name),
            *sum((["--set", s] for s in TINY), []),
        )
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a/tokenizer/tokenizer.json").read_bytes() == (
        tmp_path / "b/tokenizer/tokenizer.json"
    ).read_bytes()
    assert (tmp_path / "a/data/corpus_text_document.bin").read_bytes() == (
        tmp_path / "b/data/corpus_text_document.bin"
    ).read_bytes()


@pytest.mark.parametrize("model", ["wordpiece", "unigram"])
def test_other_models(built, tmp_path, model):
    root, _ = built
    r = llmctl(
        "tokenize",
        str(root / "web.jsonl"),
        "--out",
        str(tmp_path / model),
        "--model",
        model,
        "--vocab-size",
        "800",
    )
    assert r.returncode == 0, r.stderr
    m = artifacts.Manifest.read(tmp_path / model).metrics
    assert m["sources"]["corpus"]["documents"] == 30 and 0 <= m["sources"]["corpus"]["unk_rate"] < 0.01
    assert (tmp_path / model / "tokenizer" / "tokenizer.json").is_file()


def test_curriculum_goes_into_blend_json(built, tmp_path):
    root, _ = built
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "tokenizer: {vocab_size: 600, min_frequency: 1}\n"
        "curriculum:\n  - {blend: {web: 1.0}, tokens: 1000}\n"
        "  - {blend: {web: 0.5, code: 0.5}, tokens: 5000}\n"
    )
    r = llmctl(
        "tokenize",
        "--input",
        f"web={root / 'web.jsonl'}",
        "--input",
        f"code={root / 'code.jsonl'}:2",
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(recipe),
    )
    assert r.returncode == 0, r.stderr
    blend = json.loads((tmp_path / "o" / "blend.json").read_text())
    assert blend["blend"][1] == [1.0, 2.0]
    assert blend["curriculum"][1] == {
        "blend": [["data/web_text_document", "data/code_text_document"], [0.5, 0.5]],
        "tokens": 5000,
    }


@pytest.mark.parametrize(
    "args,message",
    [
        (["{root}/web.jsonl", "--tokenizer", "{root}/web.jsonl"], "does not load with tokenizers"),
        (["{root}/web.jsonl", "--tokenizer", "{root}/nowhere"], "no tokenizer.json there"),
        (
            ["{root}/web.jsonl", "--vocab-size", "100"],
            "too small for 4 special tokens and the 256 byte symbols",
        ),
        (["--input", "a={root}/empty.jsonl"], "every input file is empty"),
        (["--input", "a={root}/web.jsonl:0"], "weight must be a positive number"),
        (["--input", "a={root}/web.jsonl:-1"], "weight must be a positive number"),
        (["--input", "a={root}/web.jsonl:x"], "is not a number"),
        (["--input", "a={root}/web.jsonl", "--input", "a={root}/code.jsonl"], "'a' is used twice"),
        (["--input", "a={root}/missing.jsonl"], "does not exist"),
    ],
)
def test_bad_input_is_exit_2_before_any_work(built, tmp_path, args, message):
    root, _ = built
    (root / "empty.jsonl").write_text("")
    args = [a.format(root=root) for a in args]
    r = llmctl("tokenize", *args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists() and not artifacts.staging_dir(tmp_path / "o").exists()
