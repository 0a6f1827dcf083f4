"""tokenize's .bin/.idx writer gives megatron-core's IndexedDatasetBuilder bytes, without importing it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from llmctl.tokenize.indexed import IndexedWriter, optimal_dtype

DOCS = [np.array([5, 7, 0]), np.array([9, 0]), np.array([0]), np.array([65000, 1, 2, 3, 0])]
# sha256 of the files megatron-core 0.16.1's IndexedDatasetBuilder writes for DOCS, one
# add_document(doc, [len(doc)]) per document
MEGATRON = {
    np.uint16: (
        "1f0a82bf627dabc03446a573dbe75202462567a619bc54dd641e9d302c82c191",
        "195f0d892240395364211885e0b807bb1a63a12b5b439ba85feb0e1ecd73dccc",
    ),
    np.int32: (
        "5713ca0545efddf371e7713c90f927867100b1d94d8aba1689fd1d24e8db2429",
        "71bea5d5aeba7899de45f646f6ee8f34cde4a542998bbe70dfc910cccd955d16",
    ),
}


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_same_bytes_as_megatron_core_whatever_the_batches(tmp_path, dtype):
    w = IndexedWriter(tmp_path / "a.bin", dtype)
    w.add_documents(np.concatenate(DOCS[:3]), np.array([3, 2, 1]))
    w.add_documents(DOCS[3], np.array([5]))
    w.finalize(tmp_path / "a.idx")
    digest = [hashlib.sha256((tmp_path / f"a.{ext}").read_bytes()).hexdigest() for ext in ("bin", "idx")]
    assert tuple(digest) == MEGATRON[dtype]


def test_dtype_rule_is_megatron_cores():
    assert optimal_dtype(65499) is np.uint16
    assert optimal_dtype(65500) is np.int32
    assert optimal_dtype(None) is np.int32


def test_too_long_is_the_longest_str_split_word():
    """The numpy fast path gives str.split's answer, other Unicode spaces and multi-byte text included."""
    from llmctl.tokenize.stage import _too_long

    cases = ["a" * 11, "a" * 10, " " * 30, "ab " * 20, "x" * 5 + " " + "y" * 11, "y" * 11 + "\n" + "x" * 5]
    cases += ["é" * 8 + " " + "é" * 8, "é" * 11 + " z", "a\xa0" * 20, "abcdefgh\u2003" * 5, "ab\x1c" * 9]
    for text in cases:
        assert _too_long(text, 10) == any(len(w) > 10 for w in text.split()), text
