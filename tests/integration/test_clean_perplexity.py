"""The perplexity band: scores equal a plain transformers computation; the band is applied exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from llmctl import artifacts, config
from llmctl.clean import CleanConfig, run
from llmctl.formats.documents import read_shards
from tests.fixtures import corpus


def tiny_lm(path: Path, texts: list[str]) -> None:
    """A 2-layer, 32-wide Llama with a BPE tokenizer trained here (no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


def reference_ppl(model_dir: Path, text: str, max_tokens: int) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok(text, return_tensors="pt")["input_ids"][:, :max_tokens]
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    return math.exp(nll.item())


@pytest.mark.slow
def test_percentile_band(tmp_path: Path):
    passages = corpus.prose(20)
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i, p in enumerate(passages):
            # vary the texts so the perplexities spread: some passages are shuffled word salad
            words = p.split()
            text = " ".join(words[::-1]) if i % 3 == 0 else p
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    model = tmp_path / "lm"
    tiny_lm(model, passages)
    overrides = [
        "perplexity.enabled=true",
        f"perplexity.model={model}",
        "perplexity.min_percentile=20",
        "perplexity.max_percentile=80",
        "perplexity.max_tokens=64",
        "language.enabled=false",
        "quality.enabled=false",
        "repetition.enabled=false",
        "c4.enabled=false",
        "pii.enabled=false",
        "workers=1",
    ]
    cfg = config.load(CleanConfig, None, overrides)
    m = run(config.with_run(cfg, inputs=[src], out=tmp_path / "out"))
    records = list(read_shards(tmp_path / "out" / "data")) + list(read_shards(tmp_path / "out" / "rejected"))
    assert len(records) == 20
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in src.read_text().splitlines()}
    ref = {i: reference_ppl(model, t, 64) for i, t in texts.items()}
    for r in records:
        assert r["meta"]["perplexity"] == pytest.approx(ref[r["id"]], rel=1e-4)
    lo, hi = np.percentile(list(ref.values()), [20, 80])
    want = sorted(i for i, v in ref.items() if lo <= v <= hi)
    assert sorted(r["id"] for r in read_shards(tmp_path / "out" / "data")) == want
    assert m.metrics["rejected"] == {"perplexity": 20 - len(want)}
    assert m.metrics["kept_docs"] == len(want) and artifacts.is_complete(tmp_path / "out")
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert (m.metrics["perplexity"]["device"], m.metrics["perplexity"]["dtype"]) == (here, "float32")
    assert (m.config["perplexity"]["device"], m.config["perplexity"]["dtype"]) == ("auto", "float32")


def test_missing_model_is_a_user_error(tmp_path: Path):
    from llmctl.errors import UserError

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": corpus.prose(1)[0]}) + "\n")
    cfg = config.load(CleanConfig, None, ["perplexity.enabled=true", f"perplexity.model={tmp_path}/none"])
    with pytest.raises(UserError, match="not a Hugging Face model directory"):
        run(config.with_run(cfg, inputs=[src], out=tmp_path / "out"))


def test_batched_scores_equal_one_at_a_time(tmp_path: Path):
    """One forward pass per batch (right-padded, masked) gives each document's one-at-a-time score."""
    from llmctl.clean.config import PerplexityConfig
    from llmctl.clean.perplexity import Scorer

    passages = corpus.prose(12)
    model = tmp_path / "lm"
    tiny_lm(model, passages)
    texts = [p[: 30 + 45 * i] for i, p in enumerate(passages[:9])] + ["a", "", passages[9]]  # varied lengths
    cfg = PerplexityConfig(enabled=True, model=str(model), max_tokens=64, batch_size=12, device="cpu")
    scorer = Scorer(cfg)
    calls = []
    forward = scorer.model.forward
    scorer.model.forward = lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k)
    batched = scorer(texts)
    assert len(calls) == 1 and calls[0][0] == 10  # one pass over the ten documents with 2+ tokens
    single = [scorer([t])[0] for t in texts]
    assert batched[10] == single[10] == math.inf  # nothing to predict in an empty document
    assert batched == pytest.approx(single, rel=1e-5)
    finite = [i for i, t in enumerate(texts) if math.isfinite(single[i])]
    assert len(finite) >= 10
    for i in finite:
        assert batched[i] == pytest.approx(reference_ppl(model, texts[i], 64), rel=1e-5)
    bf16 = Scorer(PerplexityConfig(enabled=True, model=str(model), max_tokens=64, dtype="bfloat16"))
    assert bf16.model.dtype == torch.bfloat16 and bf16.device == "cpu"
    assert bf16(texts[:3]) == pytest.approx(batched[:3], rel=0.05)  # the same scores, less precisely


def test_device_flag_reaches_the_scorer_config(tmp_path: Path, run_cli):
    """clean --device/--dtype set perplexity.device/dtype; cuda where there is none is exit 2
    before any filtering."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": corpus.prose(1)[0]}) + "\n")
    model = tmp_path / "lm"
    model.mkdir()
    (model / "config.json").write_text("{}")
    common = ["clean", str(src), "--set", "perplexity.enabled=true", "--set", f"perplexity.model={model}"]
    r = run_cli(*common, "--out", str(tmp_path / "o1"), "--dtype", "half")
    assert r.returncode == 2 and "perplexity.dtype" in r.stderr
    if not torch.cuda.is_available():
        r = run_cli(*common, "--out", str(tmp_path / "o2"), "--device", "cuda")
        assert r.returncode == 2 and "perplexity.device=cuda: no CUDA device" in r.stderr
        assert not (tmp_path / "o2").exists()
