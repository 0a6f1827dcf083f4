"""MFU's peak: looked up by the name CUDA reports and the matmul dtype; overridden by
train.peak_tflops; none (no MFU) on CPU or on a GPU the table does not know."""

from __future__ import annotations

import json
import math

import pytest

from llmctl import config
from llmctl.pretrain import PretrainConfig, mfu


@pytest.mark.parametrize(
    ("name", "dtype", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.5),  # SXM5
        ("NVIDIA H100 80GB HBM3", "tf32", 494.5),
        ("NVIDIA H100 80GB HBM3", "fp32", 67.0),
        ("NVIDIA H100 PCIe", "bf16", 756.5),
        ("NVIDIA H100 PCIe", "fp16", 756.5),
        ("NVIDIA H100 NVL", "bf16", 835.5),
        ("NVIDIA H200", "bf16", 989.5),
        ("NVIDIA H200 NVL", "tf32", 417.5),
        ("NVIDIA A100-SXM4-40GB", "bf16", 312.0),
        ("NVIDIA A100-SXM4-80GB", "tf32", 156.0),
        ("NVIDIA A100-PCIE-40GB", "fp32", 19.5),
        ("NVIDIA A100 80GB PCIe", "fp16", 312.0),
        ("NVIDIA L40S", "bf16", 362.05),
        ("NVIDIA A10", "bf16", 125.0),
        ("NVIDIA A10", "tf32", 62.5),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
        ("NVIDIA GeForce RTX 4090", "fp32", 82.6),
    ],
)
def test_peak_by_device_name_and_dtype(name, dtype, tflops):
    value, source = mfu.peak(name, dtype)
    assert value == tflops
    assert name in source and dtype in source  # what is printed says which peak was used


@pytest.mark.parametrize(
    "name",
    ["NVIDIA GH200 480GB", "NVIDIA A10G", "NVIDIA GeForce RTX 4090 D", "NVIDIA L40", "Tesla V100-SXM2-16GB"],
)
def test_look_alikes_and_unknown_gpus_get_no_peak(name):
    value, source = mfu.peak(name, "bf16")
    assert value is None and "train.peak_tflops" in source


def test_override_wins_and_cpu_has_no_peak():
    assert mfu.peak("NVIDIA H100 80GB HBM3", "bf16", 800.0) == (800.0, "train.peak_tflops=800")
    assert mfu.peak(None, "fp32", 2.5)[0] == 2.5  # asked for explicitly: a CPU MFU
    value, source = mfu.peak(None, "fp32")
    assert value is None and source.startswith("cpu")
    with pytest.raises(ValueError, match="dtype"):
        mfu.peak("NVIDIA A10", "int8")


def test_mfu_divides_by_the_peak_of_all_devices():
    # 1e5 tokens/s x 6e9 FLOPs/token = 6e14 FLOP/s over 2 x 989.5e12
    assert mfu.mfu(1e5, 6e9, 989.5, 2) == pytest.approx(6e14 / (2 * 989.5e12))
    assert mfu.mfu(1e5, 6e9, None, 1) is None


def test_every_row_has_every_dtype_and_dense_is_at_most_half_of_sparse_bf16():
    for row, peaks in mfu.PEAKS.items():
        assert set(peaks) == set(mfu.DTYPES), row
        assert peaks["bf16"] >= peaks["tf32"] >= peaks["fp32"] / 2 > 0, row


def test_matmul_dtype():
    import torch

    assert mfu.matmul_dtype(True) == "bf16"
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert mfu.matmul_dtype(False) == "fp32"
        torch.set_float32_matmul_precision("high")
        assert mfu.matmul_dtype(False) == "tf32"
    finally:
        torch.set_float32_matmul_precision(before)


def _staging(tmp_path, device_name, device="cpu"):
    log = [
        {"step": s, "loss": 6.0 - s / 10, "lr": 1e-3, "tokens_per_s": 1000.0 * s, "seconds": 1.0}
        for s in (1, 2, 3)
    ]
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    summary = {
        "steps": 3,
        "final_loss": 5.7,
        "events": [],
        "parameters": 1_000_000,
        "train_seconds": 3.0,
        "tokens_per_step": 512,
        "padded_vocab": 512,
        "data_parallel": 1,
        "bf16": device != "cpu",
        "device": device,
        "device_name": device_name,
        "matmul_dtype": "bf16" if device != "cpu" else "fp32",
    }
    (tmp_path / "train_summary.json").write_text(json.dumps(summary))
    (tmp_path / "export.json").write_text(json.dumps({"max_abs_logit_diff": 0.0, "checkpoint": "iter_3"}))
    return tmp_path


def test_pretrain_metrics_report_no_mfu_on_cpu_and_the_table_peak_on_a_gpu(tmp_path):
    from llmctl.pretrain.stage import _metrics

    cfg = config.load(PretrainConfig, None, [])
    blend = {"vocab_size": 512}
    cpu = _metrics(cfg, _staging(tmp_path, None), blend)
    assert cpu["mfu"] is None and cpu["peak_tflops"] is None and cpu["peak_source"].startswith("cpu")
    gpu = _metrics(cfg, _staging(tmp_path, "NVIDIA H100 PCIe", "cuda:0"), blend)
    assert gpu["peak_tflops"] == 756.5 and gpu["matmul_dtype"] == "bf16"
    flops = 6 * 1_000_000 + 12 * cfg.model.num_layers * cfg.model.hidden_size * cfg.model.seq_length
    assert gpu["mfu"] == pytest.approx(2500.0 * flops / 756.5e12, abs=1e-6)  # steady rate: steps 2-3
    assert math.isfinite(gpu["mfu"])
    own = config.load(PretrainConfig, None, ["train.peak_tflops=100"])
    assert _metrics(own, _staging(tmp_path, None), blend)["peak_tflops"] == 100.0
