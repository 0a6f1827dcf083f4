"""A full disk (issue 13): one line naming the file being written and the staging kept, exit 1."""

from __future__ import annotations

import errno
import json

from typer.testing import CliRunner

from llmctl import artifacts
from llmctl.cli import app
from llmctl.formats import documents
from tests.fixtures import corpus


def test_enospc_names_the_file_and_the_staging_kept(tmp_path, monkeypatch):
    src = tmp_path / "docs.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(corpus.prose(10)))
    )
    out = tmp_path / "out"
    real = documents.ShardWriter.write_bytes
    calls = []

    def full(self, line):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "the-file.zst"))
        return real(self, line)

    monkeypatch.setattr(documents.ShardWriter, "write_bytes", full)
    r = CliRunner().invoke(app, ["clean", str(src), "--out", str(out), "--workers", "1", "-q"])
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    staging = artifacts.staging_dir(out)
    assert f"no space left on device while writing {tmp_path / 'the-file.zst'}" in text
    assert f"staging kept at {staging} (" in text and " MB)" in text
    assert staging.is_dir() and not out.exists()
