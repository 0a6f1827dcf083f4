"""The GPU path (skipped without CUDA; scripts/gpu_check.sh runs it with gpt-125m): a tiny model
pre-trained in bf16 on CUDA exports with fp32 parity on the CPU, reports MFU against the table's
peak, and the export evaluates and scores perplexity on CUDA as it does on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from llmctl import artifacts
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    src = root / "docs.jsonl"
    lines = [json.dumps({"id": str(i), "text": p}) + "\n" for i, p in enumerate(corpus.prose(60))]
    src.write_text("".join(lines))
    r = llmctl("tokenize", str(src), "--out", str(root / "tok"), "--set", "tokenizer.vocab_size=512")
    assert r.returncode == 0, r.stderr
    out = root / "pt"
    sets = [
        "train.steps=30", "model.seq_length=64", "train.bf16=true", "train.save_interval=30",
        "train.eval_interval=30", "optim.warmup_steps=3", "model.layer_spec=auto",
    ]  # fmt: skip
    r = llmctl(
        "pretrain", str(root / "tok"), "--out", str(out),
        "--config", str(REPO / "recipes/pretrain/tiny.yaml"),
        *[x for s in sets for x in ("--set", s)],
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    return root


def test_bf16_cuda_training_exports_with_fp32_parity_and_reports_mfu(pretrained):
    m = artifacts.Manifest.read(pretrained / "pt").metrics
    assert m["device"].startswith("cuda") and m["bf16"] is True and m["matmul_dtype"] == "bf16"
    assert m["final_train_loss"] < m["first_train_loss"]
    assert m["hf_max_abs_logit_diff"] <= 1e-4  # fp32 vs fp32 on the CPU, whatever trained it
    export = json.loads((pretrained / "pt" / "train_summary.json").read_text())
    from llmctl.pretrain import mfu

    peak, _ = mfu.peak(export["device_name"], "bf16")
    assert m["peak_tflops"] == peak and (m["mfu"] is None) == (peak is None)
    assert m["mfu"] is None or 0 < m["mfu"] < 1


def test_export_evaluates_on_cuda_as_on_cpu(pretrained, tmp_path):
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": p}) + "\n" for p in corpus.prose(70)[60:]))
    scores = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        r = llmctl(
            "eval", str(pretrained / "pt"), "--out", str(out), "--tasks", f"perplexity:{held},capitals",
            "--limit", "8", "--device", device, "--dtype", "float32",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads((out / "results.json").read_text())
        assert res["models"]["pt"]["device"] == device
        scores[device] = res["scores"]["pt"]
    ppl = {d: s["held"]["all"]["token_perplexity"]["value"] for d, s in scores.items()}
    assert ppl["cuda"] == pytest.approx(ppl["cpu"], rel=1e-3)
    r = llmctl(
        "eval", str(pretrained / "pt"), "--out", str(tmp_path / "bf16"), "--tasks", f"perplexity:{held}",
        "--device", "auto", "--dtype", "auto",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "bf16" / "results.json").read_text())["models"]["pt"]
    assert info["device"] == "cuda" and info["dtype"] in ("bfloat16", "float16")


def test_perplexity_scorer_on_cuda_equals_cpu(pretrained):
    from llmctl.clean.config import PerplexityConfig
    from llmctl.clean.perplexity import Scorer

    texts = corpus.prose(70)[60:]
    model = str(pretrained / "pt" / "hf")
    cpu = Scorer(PerplexityConfig(enabled=True, model=model, max_tokens=64, device="cpu"))(texts)
    gpu = Scorer(PerplexityConfig(enabled=True, model=model, max_tokens=64, device="cuda"))
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert gpu(texts) == pytest.approx(cpu, rel=1e-3)
