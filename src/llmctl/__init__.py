"""llmctl: one command-line toolchain from raw text to an aligned, quantized, evaluated LM.

llmctl --help
"""

from importlib.metadata import PackageNotFoundError, version

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


_quiet_libraries()
