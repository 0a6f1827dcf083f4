"""Running megatron-core without a GPU: the compatibility layer, applied only when CUDA is absent.

megatron-core 0.16.1 assumes CUDA in a handful of places. On a CPU-only machine (tests, the
demo, laptops) `apply()` redirects exactly those, and the GPU path runs unpatched:
  - `torch.cuda.current_device()` (rotary embeddings, DDP grad buffers)  -> the CPU device
  - the CUDA RNG tracker (`model_parallel_cuda_manual_seed`, dropout)    -> the CPU generator
  - hard-coded `device="cuda"` / `.cuda()` / `.to("cuda")` (optimizer, schedules, buffers)
                                                                          -> "cpu", via one TorchFunctionMode
  - `torch.cuda.synchronize()` (p2p communication)                       -> a no-op
  - `grad.type() == "torch.cuda.FloatTensor"` assertions (grad clipping, fp16/bf16 wrappers)
        -> CPU float tensors report the CUDA type name
A causal mask must be passed explicitly (megatron's default mask is created on "cuda" inside a
cached helper). Everything else about the model, optimizer and schedules is megatron-core's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_applied = False


def _is_cuda(device: Any) -> bool:
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, torch.device) and device.type == "cuda"


class _CudaToCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = dict(kwargs or {})
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return name if ".cuda." in name else name.replace("torch.", "torch.cuda.", 1)
        if func is torch.Tensor.to:
            args = tuple("cpu" if _is_cuda(a) else a for a in args)
        return func(*args, **kwargs)


def apply() -> bool:
    """Patch the CUDA assumptions when CUDA is absent; True when patches are (now) active."""
    global _applied
    if torch.cuda.is_available():
        return False
    if _applied:
        return True
    import megatron.core.tensor_parallel.random as mrandom

    cpu = torch.device("cpu")
    torch.cuda.current_device = lambda: cpu
    torch.cuda.get_rng_state = lambda device=None: torch.get_rng_state()
    torch.cuda.manual_seed = lambda seed: torch.manual_seed(seed)
    torch.cuda.synchronize = lambda *a, **k: None
    torch.Tensor.cuda = lambda self, *a, **k: self
    mrandom._set_cuda_rng_state = lambda new_state, device=-1, graph_safe=False: torch.set_rng_state(
        new_state
    )
    mrandom._get_cuda_rng_state = lambda device="cuda", clone=False, graph_safe=False: torch.get_rng_state()
    _CudaToCpu().__enter__()  # for the life of the process: a pretrain run is one process per rank
    _applied = True
    return True
