"""llmctl: one command-line toolchain from raw text to an aligned, quantized, evaluated LM.

llmctl --help
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
