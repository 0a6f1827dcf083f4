"""Readers and the shard writer: every format, every kind of bad record, byte-stable output."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.formats.documents import Document, Malformed


def read_all(*paths, **kw):
    return list(documents.read(documents.expand(list(paths)), **kw))


def test_every_format_and_meta_carried(tmp_path: Path):
    rec = {"id": "a", "text": "hello", "url": "http://x", "meta": {"k": 1}}
    (tmp_path / "x.jsonl").write_text(json.dumps(rec) + "\n")
    with gzip.open(tmp_path / "x.jsonl.gz", "wt") as f:
        f.write(json.dumps(rec) + "\n")
    two_frames = zstandard.ZstdCompressor().compress(
        b'{"text": "one"}\n'
    ) + zstandard.ZstdCompressor().compress(b'{"text": "two"}\n')
    (tmp_path / "x.jsonl.zst").write_bytes(two_frames)
    pq.write_table(pa.table({"id": ["p"], "text": ["from parquet"], "lang": ["en"]}), tmp_path / "x.parquet")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "doc.txt").write_text("plain text file")
    items = read_all(tmp_path)
    by_id = {d.id: d for d in items}
    assert all(isinstance(d, Document) for d in items)
    assert by_id["a"].meta == {"k": 1, "url": "http://x"}
    assert by_id["p"].text == "from parquet" and by_id["p"].meta == {"lang": "en"}
    assert by_id[f"{tmp_path.name}/x.jsonl.zst:2"].text == "two"  # id derived from file and line
    assert by_id[f"{tmp_path.name}/t/doc.txt"].text == "plain text file"
    assert len(items) == 6


def test_custom_fields(tmp_path: Path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"key": "k1", "content": "body"}) + "\n")
    (d,) = read_all(tmp_path / "x.jsonl", text_field="content", id_field="key")
    assert (d.id, d.text, d.meta) == ("k1", "body", {})


@pytest.mark.parametrize(
    "payload,error",
    [
        (b'{"text": "unterminated\n', "invalid JSON"),
        (b'{"text": "caf\xe9"}\n', "invalid UTF-8"),
        (b'{"body": "x"}\n', "missing text field 'text'"),
        (b'{"text": 5}\n', "is not a string"),
        (b"[1]\n", "not a JSON object"),
    ],
)
def test_bad_records_become_malformed(tmp_path: Path, payload: bytes, error: str):
    (tmp_path / "x.jsonl").write_bytes(b'{"text": "fine"}\n' + payload + b'{"text": "after"}\n')
    items = read_all(tmp_path / "x.jsonl")
    assert [type(i) for i in items] == [Document, Malformed, Document]
    assert items[1].line == 2 and error in items[1].error and items[1].file == "x.jsonl"


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_stream_is_one_malformed_record(tmp_path: Path, suffix: str):
    data = b"".join(json.dumps({"text": f"doc {i} " * 50}).encode() + b"\n" for i in range(3000))
    packed = gzip.compress(data) if suffix.endswith("gz") else zstandard.ZstdCompressor().compress(data)
    (tmp_path / f"x{suffix}").write_bytes(packed[: len(packed) // 2])
    items = read_all(tmp_path / f"x{suffix}")
    assert isinstance(items[-1], Malformed) and "truncated" in items[-1].error
    assert all(isinstance(i, Document) for i in items[:-1]) and 0 < len(items) - 1 < 3000


def test_empty_file_and_missing_path(tmp_path: Path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    assert read_all(tmp_path / "e.jsonl") == []
    with pytest.raises(UserError, match="does not exist"):
        documents.expand([tmp_path / "missing.jsonl"])
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(UserError, match="unsupported file type"):
        documents.expand([tmp_path / "x.csv"])


def test_shard_writer_rolls_over_and_round_trips(tmp_path: Path):
    recs = [{"id": str(i), "text": "x" * 100, "meta": {}} for i in range(50)]
    with documents.ShardWriter(tmp_path / "a", shard_bytes=1000) as w:
        for r in recs:
            w.write(r)
    assert len(w.paths) > 1 and w.count == 50
    assert list(documents.read_shards(tmp_path / "a")) == recs
    with documents.ShardWriter(tmp_path / "b", shard_bytes=1000) as w2:
        for r in recs:
            w2.write(r)
    for p, q in zip(w.paths, w2.paths, strict=True):
        assert p.read_bytes() == q.read_bytes()
