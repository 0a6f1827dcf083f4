"""Model FLOPs utilisation (MFU): achieved model FLOP/s over the devices' dense peak FLOP/s.

    python -c "from llmctl.pretrain import mfu; print(mfu.peak('NVIDIA H100 80GB HBM3', 'bf16'))"

The peak depends on the GPU and on the dtype its matrix multiplies run in, so it is looked up
in a table by the name CUDA reports and the training dtype; `train.peak_tflops` overrides it.
A GPU not in the table, and the CPU, get no MFU (None) rather than a made-up one.
"""

from __future__ import annotations

import re

# Dense peak TFLOP/s per GPU (no structured sparsity). NVIDIA's datasheets print the tensor-core
# figures "with sparsity" (marked *); the dense figure is half of that. fp32 is the non-tensor
# FP32 rate: PyTorch runs fp32 matmuls in full precision unless TF32 is allowed.
PEAKS: dict[str, dict[str, float]] = {
    # H100 datasheet (nvidia.com/en-us/data-center/h100), SXM: BF16/FP16 1,979*, TF32 989*, FP32 67
    "H100 SXM": {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0},
    # same datasheet, H100 PCIe: BF16/FP16 1,513*, TF32 756*, FP32 51
    "H100 PCIe": {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.0},
    # same datasheet, H100 NVL (PCIe, per GPU): BF16/FP16 1,671*, TF32 835*, FP32 60
    "H100 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    # H200 datasheet (nvidia.com/en-us/data-center/h200), SXM: BF16/FP16 1,979*, TF32 989*, FP32 67
    "H200 SXM": {"bf16": 989.5, "fp16": 989.5, "tf32": 494.5, "fp32": 67.0},
    # same datasheet, H200 NVL (the PCIe card): BF16/FP16 1,671*, TF32 835*, FP32 60
    "H200 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    # A100 datasheet (nvidia.com/en-us/data-center/a100), 40 GB and 80 GB alike (SXM and PCIe):
    # BF16/FP16 312 (624*), TF32 156 (312*), FP32 19.5
    "A100 40GB": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "A100 80GB": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    # L40S datasheet (nvidia.com/en-us/data-center/l40s): BF16/FP16 362.05 (733*), TF32 183 (366*),
    # FP32 91.6
    "L40S": {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6},
    # A10 datasheet (nvidia.com/en-us/data-center/products/a10-gpu): BF16/FP16 125 (250*),
    # TF32 62.5 (125*), FP32 31.2
    "A10": {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2},
    # NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090: FP16/BF16 tensor with FP32
    # accumulate (what training uses) 165.2 (330.4*), TF32 82.6 (165.2*), FP32 82.6
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6},
}

# torch.cuda.get_device_name() -> table row, first match wins. Word boundaries keep look-alikes
# out: GH200 is not an H200, A10G (AWS) and A100 are not an A10, RTX 4090 D is a cut-down card.
_NAMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), row)
    for p, row in [
        (r"\bH200\b.*\bNVL\b", "H200 NVL"),
        (r"\bH200\b", "H200 SXM"),  # "NVIDIA H200"
        (r"\bH100\b.*\bNVL\b", "H100 NVL"),
        (r"\bH100\b.*\bPCIe\b", "H100 PCIe"),
        (r"\bH100\b", "H100 SXM"),  # "NVIDIA H100 80GB HBM3"
        (r"\bA100\b.*\b80\s?GB\b", "A100 80GB"),  # "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"
        (r"\bA100\b", "A100 40GB"),  # "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"
        (r"\bL40S\b", "L40S"),
        (r"\bA10\b", "A10"),
        (r"\bRTX 4090\b(?!\s*(?:D\b|Laptop))", "RTX 4090"),
    ]
]

DTYPES = ("bf16", "fp16", "tf32", "fp32")


def device_row(name: str) -> str | None:
    """The table row of a CUDA device name, or None for a GPU the table does not know."""
    return next((row for pattern, row in _NAMES if pattern.search(name)), None)


def peak(device_name: str | None, dtype: str, override: float | None = None) -> tuple[float | None, str]:
    """(dense peak TFLOP/s per device, where it came from). device_name None means the CPU.

    The override (`train.peak_tflops`) wins everywhere; otherwise the table; otherwise None."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    if override is not None:
        return float(override), f"train.peak_tflops={override:g}"
    if device_name is None:
        return None, "cpu: no MFU (set train.peak_tflops to compute one)"
    row = device_row(device_name)
    if row is None:
        return None, f"{device_name} is not in the peak table: set train.peak_tflops for MFU"
    value = PEAKS[row][dtype]
    return value, f"{row} {dtype} dense peak {value:g} TFLOP/s ({device_name})"


def matmul_dtype(bf16: bool) -> str:
    """The dtype the matrix multiplies run in: bf16, else TF32 where PyTorch allows it, else fp32."""
    if bf16:
        return "bf16"
    import torch

    return "fp32" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def mfu(tokens_per_s: float, flops_per_token: float, peak_tflops: float | None, devices: int) -> float | None:
    """Achieved model FLOP/s over the peak of all devices; None without a peak."""
    if peak_tflops is None or peak_tflops <= 0:
        return None
    return tokens_per_s * flops_per_token / (peak_tflops * 1e12 * devices)
