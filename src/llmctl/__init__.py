"""llmctl: one command-line toolchain from raw text to an aligned, quantized, evaluated LM.

llmctl --help
"""

import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

try:
    __version__ = version("llmctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def _quiet_libraries() -> None:
    """Loggers that speak on every model load and say nothing to a user. With torchao installed
    (gptqmodel needs it) transformers imports it on each load, and it warns about its optional CUDA
    kernels on a CPU machine ("Failed to load ..._C_mxfp8...so") and torch about its Enums
    ("... is an Enum subclass ... register_constant()"); optimum lists, at INFO, each layer a GPTQ
    checkpoint keeps in full precision. Set here, before any of them is imported."""
    import logging

    for name, level in (
        ("torchao", logging.ERROR),
        ("torch.utils._pytree", logging.ERROR),
        ("optimum", logging.WARNING),
    ):
        logging.getLogger(name).setLevel(level)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then(module)` right after the module `name` executes, before anything imports from it.
    One instance per module; it steps aside after finding that module's real spec, once."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module, then = spec.loader.exec_module, self.then

            def exec_then(module: ModuleType) -> None:
                exec_module(module)
                then(module)

            spec.loader.exec_module = exec_then  # type: ignore[method-assign]
        return spec


def _eager_megatron_fusers_without_cuda(jit: ModuleType) -> None:
    """megatron-core decorates its fused kernels with torch.compile as it is imported, and each
    decoration imports torch's dynamo and inductor: ~3.5 s of CPU in every process that imports
    megatron.core, for kernels that never run without CUDA (llmctl.megatron.model.fusions turns
    them all off on CPU). Without CUDA its decorator is megatron's own no-op."""
    import torch

    if not torch.cuda.is_available():
        jit.disable_jit_fuser()


def _torchao_only_when_imported(import_utils: ModuleType) -> None:
    """transformers imports torchao (~3 s of CPU) on every model load, only for models quantized
    with torchao, which llmctl neither writes nor reads; it still sees torchao where a library that
    needs it (gptqmodel, for quantize) has imported it first."""
    available = import_utils.is_torchao_available

    def is_torchao_available(*args, **kwargs) -> bool:  # noqa: ANN002, ANN003
        return "torchao" in sys.modules and available(*args, **kwargs)

    import_utils.is_torchao_available = is_torchao_available


def _lighter_imports() -> None:
    """Seconds of CPU off every process that imports megatron-core or loads a model (each stage,
    rank and test subprocess): two hooks, each on the one module where a library decides to import
    something llmctl never runs. LLMCTL_FULL_IMPORTS=1 turns them off (to compare, or to rule
    them out)."""
    if os.environ.get("LLMCTL_FULL_IMPORTS") == "1":
        return
    for name, then in (
        ("megatron.core.jit", _eager_megatron_fusers_without_cuda),
        ("transformers.utils.import_utils", _torchao_only_when_imported),
    ):
        if name not in sys.modules and not any(getattr(f, "name", None) == name for f in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport(name, then))


_quiet_libraries()
_lighter_imports()
