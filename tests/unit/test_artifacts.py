"""The artifact contract: staging + rename, manifest last, up-to-date, --force, lineage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmctl import artifacts, lineage
from llmctl.errors import UserError


def upper_stage(src: Path, out: Path, *, force: bool = False, resume: bool = False) -> artifacts.Manifest:
    """A toy stage: upper-cases its input file(s)."""
    art = artifacts.begin("upper", out, config={"mode": "upper"}, inputs=[src], force=force, resume=resume)
    if art.done:
        return art.manifest
    text = (src / "data.txt").read_text() if src.is_dir() else src.read_text()
    (art.staging / "data.txt").write_text(text.upper())
    return art.commit({"chars": len(text)}, {"chars": len(text)})


def count_stage(src: Path, out: Path) -> artifacts.Manifest:
    art = artifacts.begin("count", out, config={}, inputs=[src])
    if art.done:
        return art.manifest
    n = len((src / "data.txt").read_text().split())
    (art.staging / "count.json").write_text(json.dumps({"words": n}))
    return art.commit({"words": n})


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    p = tmp_path / "raw.txt"
    p.write_text("hello artifact world\n")
    return p


def test_commit_writes_manifest_with_every_field(raw, tmp_path):
    out = tmp_path / "a"
    m = upper_stage(raw, out)
    assert (out / "data.txt").read_text() == "HELLO ARTIFACT WORLD\n"
    data = json.loads((out / "manifest.json").read_text())
    for key in (
        "stage",
        "llmctl_version",
        "command",
        "config",
        "inputs",
        "outputs",
        "metrics",
        "started",
        "finished",
        "duration_s",
        "host",
        "versions",
        "git_commit",
    ):
        assert key in data, key
    assert data["outputs"] == [
        {"path": "data.txt", "bytes": 21, "sha256": artifacts.sha256_file(out / "data.txt")}
    ]
    assert data["inputs"][0]["kind"] == "file" and data["inputs"][0]["sha256"] == artifacts.sha256_file(raw)
    assert data["versions"]["python"]
    assert m.metrics == {"chars": 21}
    assert not artifacts.staging_dir(out).exists()


def test_second_run_is_a_no_op_and_force_rebuilds(raw, tmp_path):
    out = tmp_path / "a"
    first = upper_stage(raw, out)
    raw.write_text("changed\n")
    again = upper_stage(raw, out)
    assert again.finished == first.finished  # untouched
    assert (out / "data.txt").read_text() == "HELLO ARTIFACT WORLD\n"
    forced = upper_stage(raw, out, force=True)
    assert (out / "data.txt").read_text() == "CHANGED\n"
    assert forced.inputs[0]["sha256"] != first.inputs[0]["sha256"]
    assert not (tmp_path / ".a.old").exists()


def test_crash_before_rename_leaves_no_artifact(raw, tmp_path, monkeypatch):
    out = tmp_path / "a"
    real_replace = os.replace

    def crash(src, dst):
        if Path(dst) == out:
            raise KeyboardInterrupt  # killed between writing the manifest and the rename
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        upper_stage(raw, out)
    assert not out.exists()
    assert artifacts.staging_dir(out).exists()
    monkeypatch.setattr(artifacts.os, "replace", real_replace)
    upper_stage(raw, out)  # the stale staging directory is cleaned, the run completes
    assert artifacts.is_complete(out)
    assert not artifacts.staging_dir(out).exists()


def test_resume_reuses_staging(raw, tmp_path):
    out = tmp_path / "a"
    art = artifacts.begin("upper", out, config={}, inputs=[raw])
    (art.staging / "checkpoint.txt").write_text("step 5")
    again = artifacts.begin("upper", out, config={}, inputs=[raw], resume=True)
    assert again.resumed and (again.staging / "checkpoint.txt").read_text() == "step 5"
    fresh = artifacts.begin("upper", out, config={}, inputs=[raw])
    assert not fresh.resumed and not (fresh.staging / "checkpoint.txt").exists()


def test_foreign_directory_is_not_overwritten(raw, tmp_path):
    out = tmp_path / "a"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an llmctl artifact"):
        upper_stage(raw, out)
    assert (out / "precious.txt").read_text() == "keep me"


def test_lineage_across_two_stages_and_tampering(raw, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    upper_stage(raw, a)
    count_stage(a, b)
    root = lineage.lineage(b)
    assert root.stage == "count" and root.summary == {"words": 3}
    (parent,) = root.parents
    assert parent.stage == "upper" and parent.status == "ok" and parent.summary == {"chars": 21}
    (leaf,) = parent.parents
    assert leaf.kind == "file" and leaf.path == raw.resolve() and leaf.status == "ok"
    assert lineage.problems(root) == []

    raw.write_text("tampered\n")
    bad = lineage.problems(lineage.lineage(b))
    assert [n.path for n in bad] == [raw.resolve()] and bad[0].status == "changed"

    raw.unlink()
    assert lineage.problems(lineage.lineage(b))[0].status == "missing"


def test_lineage_flags_a_rebuilt_parent(raw, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    upper_stage(raw, a)
    count_stage(a, b)
    raw.write_text("new words here and more\n")
    upper_stage(raw, a, force=True)
    bad = lineage.problems(lineage.lineage(b))
    assert [n.path for n in bad] == [a.resolve()]  # b was built from the old a


def test_lineage_follows_a_moved_tree(raw, tmp_path):
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    upper_stage(raw, a)
    count_stage(a, b)
    moved = tmp_path / "moved"
    (tmp_path / "runs").rename(moved)
    root = lineage.lineage(moved / "b")
    assert root.parents[0].path == (moved / "a").resolve() and root.parents[0].status == "ok"


def test_raw_directory_fingerprint_changes_with_content(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("1")
    first = artifacts.fingerprint(d)
    (d / "y.txt").write_text("2")
    second = artifacts.fingerprint(d)
    assert first["kind"] == "dir" and first["files"] == 1 and second["files"] == 2
    assert first["sha256"] != second["sha256"]


def test_concurrent_shards_share_one_staging_directory(raw, tmp_path):
    """SLURM array tasks start together: every one joins the same staging dir, none wipes it."""
    import multiprocessing as mp

    out = tmp_path / "a"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_join_shared, args=(raw, out, i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 6
    staging = artifacts.staging_dir(out)
    assert sorted(f.name for f in staging.glob("shard-*")) == [f"shard-{i}" for i in range(6)]


def _join_shared(raw: Path, out: Path, i: int) -> None:
    art = artifacts.begin("upper", out, config={"k": 1}, inputs=[raw], shared=True)
    (art.staging / f"shard-{i}").write_text("done")


@pytest.mark.parametrize("change", ["append", "same_size", "delete", "add"])
def test_an_output_changed_during_the_commit_fails_it(raw, tmp_path, monkeypatch, change):
    """Another writer touches a file after it was hashed: no manifest with a wrong hash."""
    out = tmp_path / "a"
    art = artifacts.begin("upper", out, config={}, inputs=[raw])
    (art.staging / "a.txt").write_text("first file\n")
    (art.staging / "b.txt").write_text("second file\n")
    real = artifacts.sha256_file
    done = []

    def hash_then_tamper(path):
        digest = real(path)
        if Path(path).name == "b.txt" and not done:
            done.append(1)
            a = art.staging / "a.txt"
            if change == "append":
                a.write_text("first file, and more\n")
            elif change == "same_size":
                a.write_text("FIRST FILE\n")
            elif change == "delete":
                a.unlink()
            else:
                (art.staging / "c.txt").write_text("late\n")
        return digest

    monkeypatch.setattr(artifacts, "sha256_file", hash_then_tamper)
    with pytest.raises(RuntimeError, match="changed while"):
        art.commit({})
    assert not artifacts.is_complete(out) and not (art.staging / "manifest.json").exists()
