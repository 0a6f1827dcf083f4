"""The one record type of the data stages, and its readers and writers.

Every data stage reads and writes `{"id", "text", "meta": {...}}` records. Readers take
`.jsonl`, `.jsonl.gz`, `.jsonl.zst`, `.parquet`, directories of `.txt` files (one document per
file) and llmctl artifacts (their `data/` shards). A record that cannot be read (bad JSON,
invalid UTF-8, missing text field, truncated stream) comes out as a `Malformed` with file and
line, never as an exception, so stages can count it and go on.

    for item in documents.read(documents.expand(["data/sample"]), text_field="text"):
        ...
    with documents.ShardWriter(out / "data") as w:
        w.write(record)
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zstandard

from llmctl.artifacts import MANIFEST
from llmctl.errors import UserError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson")
SUFFIXES = (*JSONL_SUFFIXES, ".parquet", ".txt")
SHARD_BYTES = 256 << 20  # uncompressed bytes per output shard
ZSTD_LEVEL = 3


@dataclass
class Document:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "meta": self.meta}


@dataclass
class Malformed:
    """A record that could not be read: where it was and why."""

    file: str
    line: int
    error: str
    raw: str = ""  # the first bytes of the bad record, for the rejected shard


@dataclass(frozen=True)
class Source:
    """One input file, and the name documents without an id are named after."""

    path: Path
    name: str  # path relative to the input argument's parent: stable across machines


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suf in SUFFIXES:
        if name.endswith(suf):
            return suf
    return None


def expand(inputs: list[str | Path]) -> list[Source]:
    """Input arguments -> readable files, in a deterministic order. Missing paths are exit 2."""
    sources: list[Source] = []
    for arg in inputs:
        p = Path(arg)
        if not p.exists():
            raise UserError(f"input {p} does not exist")
        base = p.parent
        if p.is_file():
            if _kind(p) is None:
                raise UserError(f"input {p}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
            sources.append(Source(p, _printable(p.name)))
            continue
        root = p / "data" if (p / MANIFEST).is_file() and (p / "data").is_dir() else p
        files = sorted(f for f in root.rglob("*") if f.is_file() and _kind(f) is not None)
        if not files:
            raise UserError(f"input {p}: no readable files (expected {', '.join(SUFFIXES)})")
        sources.extend(Source(f, _printable(f.relative_to(base).as_posix())) for f in files)
    return sources


def _printable(name: str) -> str:
    """A file name as valid UTF-8 for ids and JSON: bytes that are not UTF-8 (which Python keeps
    as lone surrogates, and orjson refuses) become backslash escapes, e.g. caf\\xe9.jsonl."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


class Cursor:
    """How many input bytes (on disk, compressed) have been read: drives progress bars' ETA."""

    def __init__(self) -> None:
        self.done = 0  # bytes of finished files
        self._fh: Any = None

    def position(self) -> int:
        try:
            return self.done + (self._fh.tell() if self._fh is not None and not self._fh.closed else 0)
        except (OSError, ValueError):
            return self.done


def _open_lines(path: Path, cursor: Cursor | None = None) -> Iterator[bytes]:
    """Raw lines of a possibly compressed file. Raises EOFError when a stream is truncated,
    after yielding every complete line before the damage."""
    name = path.name.lower()
    with open(path, "rb") as raw:
        if cursor is not None:
            cursor._fh = raw
        if name.endswith(".zst"):
            yield from _stream_lines(raw, zstandard.ZstdDecompressor().decompressobj, "zstd")
        elif name.endswith(".gz"):
            yield from _stream_lines(raw, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), "gzip")
        else:
            yield from io.BufferedReader(raw, buffer_size=1 << 20)


def _stream_lines(raw: Any, new: Any, what: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Lines of a multi-member gzip / multi-frame zstd stream, decoded chunk by chunk.

    Both libraries' file readers hide damage (zstandard's stream_reader ends silently inside a
    truncated frame; gzip raises only when its buffer refills, losing the lines before it), so
    members are decoded here and one left open at EOF is an error.
    """
    dobj = new()
    pending = b""
    started = False
    while chunk := raw.read(chunk_size):
        started = True
        data = dobj.decompress(chunk)
        while dobj.eof and dobj.unused_data:  # the next member/frame begins in this chunk
            rest = dobj.unused_data
            dobj = new()
            data += dobj.decompress(rest)
        if data:
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"
    if started and not dobj.eof:
        raise EOFError(f"{what} stream ended inside a frame (file truncated?)")
    if pending:
        yield pending


def _read_jsonl(
    src: Source, text_field: str, id_field: str, cursor: Cursor | None
) -> Iterator[Document | Malformed]:
    line_no = 0
    try:
        for line_no, raw in enumerate(_open_lines(src.path, cursor), start=1):  # noqa: B007
            if not raw.strip():
                continue
            yield _parse(raw, src, line_no, text_field, id_field)
    except (EOFError, OSError, zstandard.ZstdError, zlib.error) as e:
        yield Malformed(src.name, line_no + 1, f"truncated or corrupt stream: {e}")


def _parse(raw: bytes, src: Source, line_no: int, text_field: str, id_field: str) -> Document | Malformed:
    try:
        obj = orjson.loads(raw)  # orjson rejects invalid UTF-8, as it should
    except orjson.JSONDecodeError as e:
        what = "invalid UTF-8" if "utf-8" in str(e).lower() else "invalid JSON"
        return Malformed(src.name, line_no, f"{what}: {e}", _preview(raw))
    if not isinstance(obj, dict):
        return Malformed(src.name, line_no, "record is not a JSON object", _preview(raw))
    return _document(obj, src, line_no, text_field, id_field, raw)


def _document(
    obj: dict[str, Any], src: Source, pos: int, text_field: str, id_field: str, raw: bytes = b""
) -> Document | Malformed:
    text = obj.get(text_field)
    if not isinstance(text, str):
        why = (
            f"missing text field '{text_field}'" if text is None else f"field '{text_field}' is not a string"
        )
        return Malformed(src.name, pos, why, _preview(raw))
    doc_id = obj.get(id_field)
    doc_id = str(doc_id) if doc_id is not None else f"{src.name}:{pos}"
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    extra = {k: v for k, v in obj.items() if k not in (text_field, id_field, "meta")}
    if extra:
        meta = {**meta, **extra}
    return Document(doc_id, text, meta)


def _preview(raw: bytes, limit: int = 2000) -> str:
    return raw[:limit].decode("utf-8", errors="replace")


def _read_parquet(src: Source, text_field: str, id_field: str) -> Iterator[Document | Malformed]:
    import pyarrow.parquet as pq

    pos = 0
    try:
        pf = pq.ParquetFile(src.path)
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                pos += 1
                yield _document(row, src, pos, text_field, id_field)
    except Exception as e:  # pyarrow raises many types for a damaged file
        yield Malformed(src.name, pos + 1, f"unreadable parquet: {e}")


def _read_txt(src: Source) -> Iterator[Document | Malformed]:
    data = src.path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Malformed(src.name, 1, f"invalid UTF-8: {e}", _preview(data))
        return
    yield Document(src.name, text, {"source": src.name})


def read(
    sources: list[Source], *, text_field: str = "text", id_field: str = "id", cursor: Cursor | None = None
) -> Iterator[Document | Malformed]:
    """Every record of every source, in order; unreadable ones as Malformed."""
    for src in sources:
        kind = _kind(src.path)
        if kind == ".txt":
            yield from _read_txt(src)
        elif kind == ".parquet":
            yield from _read_parquet(src, text_field, id_field)
        else:
            yield from _read_jsonl(src, text_field, id_field, cursor)
        if cursor is not None:
            cursor.done += src.path.stat().st_size
            cursor._fh = None


def rows(sources: list[Source]) -> Iterator[tuple[Source, int, dict[str, Any] | Malformed]]:
    """(source, line, record) of every JSONL / parquet record as its raw object, whatever its
    fields: for stages whose records are not documents (instruction data, preference pairs).
    Bad JSON, a non-object or a damaged stream comes out as a Malformed, as in `read`."""
    for src in sources:
        kind = _kind(src.path)
        if kind == ".txt":
            yield src, 1, Malformed(src.name, 1, "a .txt file holds no records (expected JSONL or parquet)")
        elif kind == ".parquet":
            import pyarrow.parquet as pq

            pos = 0
            try:
                for batch in pq.ParquetFile(src.path).iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        pos += 1
                        yield src, pos, row
            except Exception as e:  # pyarrow raises many types for a damaged file
                yield src, pos + 1, Malformed(src.name, pos + 1, f"unreadable parquet: {e}")
        else:
            line_no = 0
            try:
                for line_no, raw in enumerate(_open_lines(src.path), start=1):  # noqa: B007
                    if not raw.strip():
                        continue
                    try:
                        obj = orjson.loads(raw)
                    except orjson.JSONDecodeError as e:
                        yield src, line_no, Malformed(src.name, line_no, f"invalid JSON: {e}", _preview(raw))
                        continue
                    yield src, line_no, obj
            except (EOFError, OSError, zstandard.ZstdError, zlib.error) as e:
                yield src, line_no + 1, Malformed(src.name, line_no + 1, f"truncated or corrupt stream: {e}")


def read_small_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a small JSONL file that a user hands in (an
    evaluation set, task items). Unlike corpus input, a line that is not UTF-8 JSON is exit 2
    (FILE:LINE): binary data, bad JSON, and nesting too deep for the parser alike."""
    import json

    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path}:{n}: not UTF-8 text (byte {e.start}); expected JSON Lines") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            except RecursionError:
                raise UserError(f"{path}:{n}: JSON nested too deeply to read") from None
            yield n, value


def dumps(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"


def malformed_record(m: Malformed) -> dict[str, Any]:
    """How an unreadable record appears in a stage's rejected/ shards."""
    return {
        "id": f"{m.file}:{m.line}",
        "text": m.raw,
        "meta": {"file": m.file, "line": m.line, "error": m.error},
        "reason": "malformed",
    }


def write_jsonl_zst(path: Path, records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    """One .jsonl.zst file (possibly empty); returns the number of records."""
    n = 0
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(fh) as w:
        for r in records:
            w.write(dumps(r))
            n += 1
    return n


class ShardWriter:
    """Writes records to `DIR/part-NNNNN.jsonl.zst`, starting a new shard every SHARD_BYTES.

    Output is a pure function of the record sequence (single-threaded zstd at a fixed level),
    so the same records give byte-identical shards.
    """

    def __init__(
        self, directory: Path, *, prefix: str = "part", shard_bytes: int = SHARD_BYTES, start: int = 0
    ):
        self.directory = directory
        self.prefix = prefix
        self.shard_bytes = shard_bytes
        self.index = start
        self.count = 0
        self.bytes = 0
        self.paths: list[Path] = []
        self._fh: Any = None
        self._writer: Any = None
        self._shard_size = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _open(self) -> None:
        path = self.directory / f"{self.prefix}-{self.index:05d}.jsonl.zst"
        self._fh = open(path, "wb")
        self._writer = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(self._fh, closefd=False)
        self.paths.append(path)
        self._shard_size = 0

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.flush(zstandard.FLUSH_FRAME)
            self._writer.close()
            self._fh.close()
            self._writer = self._fh = None
            self.index += 1

    def write_bytes(self, line: bytes) -> None:
        if self._writer is None:
            self._open()
        self._writer.write(line)
        self._shard_size += len(line)
        self.count += 1
        self.bytes += len(line)
        if self._shard_size >= self.shard_bytes:
            self._close_shard()

    def write(self, record: dict[str, Any]) -> None:
        self.write_bytes(dumps(record))

    def close(self) -> None:
        self._close_shard()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_shards(directory: Path) -> Iterator[dict[str, Any]]:
    """Records of a `part-*.jsonl.zst` directory (an llmctl output), in shard order."""
    for path in sorted(directory.glob("*.jsonl.zst")):
        for raw in _open_lines(path):
            yield orjson.loads(raw)
