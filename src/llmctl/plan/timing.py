"""Wall-clock time and GPU-hours of a pre-training run, from an assumed MFU or a measured run.

    python -c "from llmctl.plan import timing; print(timing.estimate(1.4e12, 6 * 70e9, 1024, 'h100', 0.4))"

time = tokens x FLOPs per token / (GPUs x dense peak FLOP/s x MFU), FLOPs per token = 6N plus
the attention scores' 12·L·h·s (the count pretrain's MFU uses). With a measured run the
per-GPU FLOP/s it achieved (its tokens/s x its FLOPs per token / its devices) replaces peak x MFU,
so a small run on the same hardware can time a bigger model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmctl.errors import UserError
from llmctl.pretrain.mfu import PEAKS  # the cited datasheet table (dense TFLOP/s per GPU and dtype)

# --gpu name -> the row of pretrain/mfu.py's table (NVIDIA datasheets; the SXM parts, bf16 dense:
# H100 989.5, H200 989.5, A100 312 TFLOP/s)
GPUS = {
    "h100": "H100 SXM",
    "h100-pcie": "H100 PCIe",
    "h200": "H200 SXM",
    "a100": "A100 80GB",
    "a100-40gb": "A100 40GB",
    "l40s": "L40S",
    "a10": "A10",
    "rtx4090": "RTX 4090",
}


def peak_flops(gpu: str, dtype: str = "bf16") -> float:
    """Dense peak FLOP/s of one GPU."""
    if gpu.lower() not in GPUS:
        raise UserError(f"--gpu {gpu!r}: unknown GPU; one of {', '.join(GPUS)}")
    if dtype not in PEAKS[GPUS[gpu.lower()]]:
        raise UserError(f"--dtype {dtype!r}: one of {', '.join(PEAKS[GPUS[gpu.lower()]])}")
    return PEAKS[GPUS[gpu.lower()]][dtype] * 1e12


@dataclass(frozen=True)
class Timing:
    tokens: float
    flops_per_token: float
    gpus: int
    flops_per_gpu: float  # achieved FLOP/s per GPU
    source: str

    @property
    def seconds(self) -> float:
        return self.tokens * self.flops_per_token / (self.gpus * self.flops_per_gpu)

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.gpus / 3600

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "seconds": self.seconds,
            "days": self.seconds / 86400,
            "gpu_hours": self.gpu_hours,
            "tokens_per_s": self.tokens_per_s,
            "flops": self.tokens * self.flops_per_token,
        }


def _check(tokens: float, gpus: int) -> None:
    if gpus < 1:
        raise UserError(f"--gpus {gpus}: must be >= 1")
    if tokens <= 0:
        raise UserError("the recipe trains on no tokens")


def estimate(
    tokens: float, flops_per_token: float, gpus: int, gpu: str, mfu: float, dtype: str = "bf16"
) -> Timing:
    """Time at an assumed MFU."""
    _check(tokens, gpus)
    if not 0 < mfu <= 1:
        raise UserError(f"--mfu {mfu}: a fraction in (0, 1]")
    peak = peak_flops(gpu, dtype)
    return Timing(
        tokens, flops_per_token, gpus, peak * mfu, f"{GPUS[gpu.lower()]} {dtype} peak x MFU {mfu:g}"
    )


def measured(
    tokens: float,
    flops_per_token: float,
    gpus: int,
    run_tps: float,
    run_fpt: float,
    run_devices: int,
    where: str,
) -> Timing:
    """Time at the per-device FLOP/s a finished run achieved."""
    _check(tokens, gpus)
    if run_tps <= 0:
        raise UserError(f"{where}: the run recorded no tokens/s")
    per_gpu = run_tps * run_fpt / run_devices
    return Timing(
        tokens,
        flops_per_token,
        gpus,
        per_gpu,
        f"measured: {run_tps:g} tokens/s on {run_devices} device(s) ({where})",
    )


def flops_from_gpu_hours(hours: float, gpu: str, mfu: float, dtype: str = "bf16") -> float:
    """The training FLOPs that `hours` GPU-hours deliver at an MFU."""
    if hours <= 0:
        raise UserError(f"--gpu-hours {hours}: must be > 0")
    if not 0 < mfu <= 1:
        raise UserError(f"--mfu {mfu}: a fraction in (0, 1]")
    return hours * 3600 * peak_flops(gpu, dtype) * mfu
