"""megatron-core's IndexedDataset files (`NAME_text_document.{bin,idx}`), written without megatron-core.

    w = IndexedWriter("data/corpus_text_document.bin", optimal_dtype(vocab_size))
    w.add_documents(np.array([5, 7, 0, 9, 0]), np.array([3, 2]))   # two documents, EOD included
    w.finalize("data/corpus_text_document.idx")

megatron-core's IndexedDatasetBuilder imports torch and megatron.core on import (10 CPU s and
350 MB in each process, a fifth of a whole tokenize run) to write a header and three arrays, so
tokenize writes the same bytes here: `tests/unit/tokenize/test_tokenize_indexed.py` compares
them with the builder's, and pretrain reads them with megatron-core's IndexedDataset.

The layout (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`): `.bin` is every
document's tokens back to back; `.idx` is the header `MMIDIDX\\0\\0`, version 1 (<Q), the dtype
code (<B), the sequence count and the document count (<Q each), then the sequence lengths
(int32), the sequences' byte offsets into `.bin` (int64) and the document indices (int64, the
sequence index where each document ends, led by 0). tokenize writes one sequence per document.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
# megatron-core's DType codes
DTYPE_CODES = {
    np.uint8: 1,
    np.int8: 2,
    np.int16: 3,
    np.int32: 4,
    np.int64: 5,
    np.float64: 6,
    np.float32: 7,
    np.uint16: 8,
}


def optimal_dtype(vocab_size: int | None) -> type[np.number]:
    """uint16 when every token id fits, int32 otherwise (megatron-core's DType.optimal_dtype)."""
    return np.uint16 if vocab_size is not None and vocab_size < 65500 else np.int32


class IndexedWriter:
    """IndexedDatasetBuilder's output, one sequence per document, written a batch at a time."""

    def __init__(self, bin_path: str | Path, dtype: type[np.number]) -> None:
        self.dtype = dtype
        self._bin = open(bin_path, "wb")  # noqa: SIM115 (closed by finalize)
        self._lengths: list[np.ndarray] = []

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents: their tokens back to back, and each one's length."""
        self._bin.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int32))

    def finalize(self, idx_path: str | Path) -> None:
        """Close `.bin` and write `.idx`."""
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        count = len(lengths)
        pointers = np.zeros(count, dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * np.dtype(self.dtype).itemsize, out=pointers[1:])
        with open(idx_path, "wb") as f:
            f.write(HEADER)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            f.write(struct.pack("<Q", count))
            f.write(struct.pack("<Q", count + 1))
            f.write(lengths.tobytes())
            f.write(pointers.tobytes())
            f.write(np.arange(count + 1, dtype=np.int64).tobytes())
