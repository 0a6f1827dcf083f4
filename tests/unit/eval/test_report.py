"""report.md's first table compares every model side by side (issue 21): tasks and perplexity,
each judge's mean reward, and size: parameters (a GPTQ layer's packed weights counted as the
weights they stand for) and weight bytes on disk."""

from __future__ import annotations

from pathlib import Path

import torch

from llmctl.eval import report
from llmctl.eval.lm import count_parameters
from llmctl.eval.stage import weight_bytes


def _score(v, se=None):
    return {"value": v, "stderr": se}


def results() -> dict:
    models = {
        "dpo": {"path": "/r/dpo/hf", "parameters": 362_816, "weight_bytes": 1_451_264},
        "quantize": {"path": "/r/quantize/hf", "parameters": 362_816, "weight_bytes": 412_000},
    }
    for m in models.values():
        m |= {"device": "cpu", "dtype": "float32", "lineage_sha256": "ab" * 32}
    gen = {"version": 1, "items": 40, "num_fewshot": 3, "type": "generation", "metrics": ["regex"]}
    ppl = {"version": 1, "items": 12, "num_fewshot": 0, "type": "perplexity", "metrics": ["bits_per_byte"]}
    tasks = {"arith": gen, "ppl": ppl}

    def scored(regex, se, bpb):
        ppl_ = {"all": {"bits_per_byte": _score(bpb)}}
        return {"arith": {"all": {"regex": _score(regex, se)}}, "ppl": ppl_}

    scores = {"dpo": scored(0.1, 0.05, 2.86), "quantize": scored(0.0, 0.0, 2.9)}
    rewards = {
        "dpo": {"arith": _score(0.25, 0.01) | {"n": 40}},
        "quantize": {"arith": _score(-0.5) | {"n": 40}},
    }
    judge = {"judges": {}, "rewards": {"rm": rewards}, "win_rates": {"rm": {"arith": []}}}
    return {"models": models, "tasks": tasks, "scores": scores, "judge": judge, "seed": 1}


def test_the_first_table_has_tasks_perplexity_reward_and_size_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_charts", lambda *a: None)  # matplotlib is not what is tested here
    report.write_report(results(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    first = text.split("\n\n")[1].splitlines()  # what `make demo` prints: the table under the title
    assert first[0] == "| task | version | items | shots | metric | dpo | quantize |"
    assert "| arith | 1 | 40 | 3 | regex | 0.1000 ± 0.0500 | 0.0000 ± 0.0000 |" in first
    assert "| ppl | 1 | 12 | — | bits_per_byte | 2.8600 | 2.9000 |" in first
    assert "| arith | 1 | 40 | 3 | reward (rm) | 0.2500 ± 0.0100 | -0.5000 |" in first
    assert not any("ppl" in row and "reward" in row for row in first)  # only generation tasks are judged
    assert first[-2:] == [
        "| size | — | — | — | parameters | 362,816 | 362,816 |",
        "| size | — | — | — | weights on disk | 1.45 MB | 0.41 MB |",
    ]
    assert "| quantize | /r/quantize/hf | 362,816 | 0.41 MB | cpu, float32 |" in text  # ## Models
    old = results()  # results.json of an older run: no judge, no weight_bytes
    del old["judge"], old["models"]["dpo"]["weight_bytes"]
    report.write_report(old, tmp_path)
    first = (tmp_path / "report.md").read_text().split("\n\n")[1].splitlines()
    assert "| size | — | — | — | weights on disk | — | 0.41 MB |" in first
    assert not any("reward" in row for row in first)
    assert "Quantized vs full precision" not in text  # no quantized_from: no pairing


def test_a_quantized_model_beside_its_fp_parent_gets_a_delta_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_charts", lambda *a: None)
    res = results()
    res["models"]["quantize"]["quantized_from"] = "/r/dpo/hf"
    report.write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    table = text.split("## Quantized vs full precision: quantize against dpo\n\n")[1].split("\n\n")[0]
    assert table.splitlines() == [
        "| task | metric | dpo | quantize | change | relative |",
        "|---|---|---|---|---|---|",
        "| arith | regex | 0.1000 ± 0.0500 | 0.0000 ± 0.0000 | -0.1000 | -100.00% |",
        "| ppl | bits_per_byte | 2.8600 | 2.9000 | +0.0400 | +1.40% |",
        "| arith | reward (rm) | 0.2500 ± 0.0100 | -0.5000 | -0.7500 | -300.00% |",
        "| size | weights on disk (change in MB) | 1.45 MB | 0.41 MB | -1.0393 | -71.61% |",
    ]
    res["models"]["quantize"]["quantized_from"] = "/elsewhere/hf"  # its parent not evaluated: no table
    report.write_report(res, tmp_path)
    assert "Quantized vs full precision" not in (tmp_path / "report.md").read_text()


class _Packed(torch.nn.Module):
    """What a GPTQ layer looks like to count_parameters: weights in a qweight buffer."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(in_features // 8, out_features, dtype=torch.int32))


def test_parameters_count_packed_weights_and_disk_bytes_count_weight_files(tmp_path: Path):
    fp = torch.nn.Sequential(torch.nn.Embedding(10, 16), torch.nn.Linear(16, 32, bias=False))
    quantized = torch.nn.Sequential(torch.nn.Embedding(10, 16), _Packed(16, 32))
    assert count_parameters(fp) == count_parameters(quantized) == 10 * 16 + 16 * 32
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "pytorch_model-00001.bin").write_bytes(b"x" * 24)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{" + " " * 500 + "}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.safetensors").write_bytes(b"x" * 7)  # not the model's: HF reads the top level
    assert weight_bytes(tmp_path) == 1024
