"""Manifests handed over by someone else (issues 12, 13): lineage, inspect and summary read only
what a manifest recorded, never hang, never recurse forever, and a malformed one is exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from llmctl import artifacts, lineage
from llmctl.errors import UserError
from tests.conftest import llmctl
from tests.unit.test_artifacts import count_stage, upper_stage


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path, Path]:
    raw = tmp_path / "raw.txt"
    raw.write_text("hello artifact world\n")
    a, b = tmp_path / "a", tmp_path / "b"
    upper_stage(raw, a)
    count_stage(a, b)
    return raw, a, b


def edit(directory: Path, fn) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(fn(data)))


def cli(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """The real CLI with a timeout: a case that hangs fails instead of blocking the suite."""
    return llmctl(*args, timeout=timeout)


def test_a_manifest_naming_itself_is_a_cycle_not_a_recursion_error(chain):
    _, a, b = chain

    def self_input(d):
        d["inputs"][0].update(path=str(b.resolve()), relpath=".", kind="artifact")
        return d

    edit(b, self_input)
    with pytest.raises(UserError, match="lineage cycle"):
        lineage.lineage(b)
    r = cli("lineage", str(b))
    assert r.returncode == 2 and "lineage cycle" in r.stderr and "Traceback" not in r.stderr


def test_a_two_artifact_cycle(chain):
    _, a, b = chain
    entry = json.loads((b / "manifest.json").read_text())["inputs"][0]  # b's input: a
    edit(a, lambda d: {**d, "inputs": [{**entry, "path": str(b.resolve()), "relpath": "../b"}]})
    with pytest.raises(UserError, match="lineage cycle"):
        lineage.lineage(b)


def test_depth_is_bounded(tmp_path, chain):
    _, a, _ = chain
    template = json.loads((a / "manifest.json").read_text())
    prev = a
    for i in range(1200):  # past Python's recursion limit: a RecursionError before
        d = tmp_path / f"d{i}"
        d.mkdir()
        entry = {"path": str(prev.resolve()), "relpath": f"../{prev.name}", "kind": "artifact"}
        entry["sha256"] = artifacts.sha256_file(prev / "manifest.json")
        (d / "manifest.json").write_text(json.dumps({**template, "inputs": [entry]}))
        prev = d
    with pytest.raises(UserError, match="deeper than"):
        lineage.lineage(prev)


def test_a_relpath_that_escapes_is_not_followed(chain, tmp_path):
    _, _, b = chain

    def escape(d):
        d["inputs"][0].update(
            path=str(tmp_path / "gone" / "a"), relpath="../" * 30 + "etc/passwd", kind="file", bytes=10
        )
        return d

    edit(b, escape)
    (node,) = lineage.lineage(b).parents
    assert node.path != Path("/etc/passwd") and node.status == "missing"


def test_a_directory_input_pointing_at_root_is_not_hashed(chain):
    """kind=dir with relpath `/`: the walk stops once the tree is bigger than the one recorded."""
    _, _, b = chain

    def root(d):
        d["inputs"][0] = {"path": "/", "relpath": "/", "kind": "dir", "files": 1, "bytes": 10, "sha256": "0"}
        return d

    edit(b, root)
    r = cli("lineage", str(b), "--json", timeout=60)
    assert r.returncode == 1, r.stderr  # changed: a problem, found in seconds
    node = json.loads(r.stdout)["inputs"][0]
    assert node["status"] == "changed" and "more than the recorded files" in node["detail"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_fifo_never_blocks(chain, tmp_path, kind):
    """/proc/kmsg blocks on read forever; a FIFO made here blocks the same way (on open)."""
    _, _, b = chain
    d = tmp_path / "pipes"
    d.mkdir()
    fifo = d / "data.jsonl"
    os.mkfifo(fifo)
    target = fifo if kind == "file" else d
    entry = {"path": str(target), "relpath": os.path.relpath(target, b), "kind": kind, "sha256": "0"}
    entry |= {"bytes": 10} if kind == "file" else {"files": 1, "bytes": 10}
    edit(b, lambda m: {**m, "inputs": [entry]})
    r = cli("lineage", str(b), "--json", timeout=30)
    assert r.returncode == 1 and json.loads(r.stdout)["inputs"][0]["status"] == "changed"


def test_a_zero_size_special_file_is_not_read(chain):
    """procfs reports size 0 for /proc/kmsg; such a file is compared without a read."""
    _, _, b = chain
    kmsg = Path("/proc/kmsg")
    if not kmsg.exists():
        pytest.skip("no /proc/kmsg here")
    entry = {"path": str(kmsg), "relpath": "/proc/kmsg", "kind": "file", "bytes": 0, "sha256": "0"}
    edit(b, lambda m: {**m, "inputs": [entry]})
    r = cli("lineage", str(b), "--json", timeout=30)
    assert r.returncode == 1 and json.loads(r.stdout)["inputs"][0]["status"] == "changed"


MALFORMED = {
    "a JSON list": lambda d: [d],
    "no stage": lambda d: {k: v for k, v in d.items() if k != "stage"},
    "inputs not a list": lambda d: {**d, "inputs": {"path": "x"}},
    "an input without path": lambda d: {**d, "inputs": [{"kind": "file", "sha256": "0"}]},
    "an input that is a string": lambda d: {**d, "inputs": ["raw.txt"]},
    "an output without bytes": lambda d: {**d, "outputs": [{"path": "x", "sha256": "0"}]},
    "summary a list": lambda d: {**d, "summary": [1, 2]},
    "an unknown input kind": lambda d: {**d, "inputs": [{**d["inputs"][0], "kind": "socket"}]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("command", ["lineage", "inspect", "summary"])
def test_a_malformed_manifest_is_exit_2_naming_it(chain, case, command):
    _, _, b = chain
    edit(b, MALFORMED[case])
    from typer.testing import CliRunner

    from llmctl.cli import app

    r = CliRunner().invoke(app, [command, str(b)])
    assert r.exit_code == 2, (case, r.output, r.exception)
    assert "malformed manifest" in r.output and str(b / "manifest.json") in r.output.replace("\n", "")


def test_a_diamond_is_walked_once_per_artifact(chain, tmp_path):
    """An artifact reached through two inputs is checked once, not once per path to it."""
    _, a, _ = chain
    template = json.loads((a / "manifest.json").read_text())
    prev = a
    for i in range(40):  # 2**40 paths through this chain: only a walk that remembers finishes
        d = tmp_path / f"x{i}"
        d.mkdir()
        entry = {"path": str(prev.resolve()), "relpath": f"../{prev.name}", "kind": "artifact"}
        entry["sha256"] = artifacts.sha256_file(prev / "manifest.json")
        (d / "manifest.json").write_text(json.dumps({**template, "inputs": [entry, entry]}))
        prev = d
    root = lineage.lineage(prev)
    assert root.parents[0].status == "ok" and lineage.problems(root) == []
    r = cli("lineage", str(prev), "--json", timeout=60)
    assert r.returncode == 0 and "see above" in r.stdout and len(r.stdout) < 100_000


def test_via_draws_one_input_of_several_and_still_checks_the_others(chain, tmp_path, monkeypatch):
    """`llmctl lineage EVAL --via QUANTIZED` (make demo): only that model's chain is drawn; an input
    left out still fails the check, by name; a --via that is no input is exit 2 naming it."""
    from typer.testing import CliRunner

    from llmctl.cli import app
    from llmctl.report import lineage_json

    raw, a, b = chain
    other = tmp_path / "other"
    upper_stage(raw, other)
    art = artifacts.begin("join", tmp_path / "j", config={}, inputs=[b, other])
    art.commit({})
    j = tmp_path / "j"
    root = lineage.only_via(lineage.lineage(j), [b / "count.json"])  # a path inside an input names it
    assert [p.path for p in root.parents] == [b] and root.detail == "1 other input(s) not shown"
    drawn = lineage_json(root)
    assert [i["stage"] for i in drawn["inputs"]] == ["count"] and str(other) not in json.dumps(drawn)
    assert [i["stage"] for i in drawn["inputs"][0]["inputs"]] == ["upper"]  # drawn back to the raw file
    with pytest.raises(UserError, match=r"--via .*raw.txt: not an input of .*j \(its artifact inputs: "):
        lineage.only_via(lineage.lineage(j), [raw])
    edit(other, lambda m: m | {"metrics": {"chars": -1}})  # j's recorded input no longer matches
    from llmctl import console

    monkeypatch.setattr(console.out, "_width", 1000)  # set at import: COLUMNS comes too late
    r = CliRunner().invoke(app, ["lineage", str(j), "--via", str(b)])
    assert r.exit_code == 1 and f"{other}: changed" in r.output and "--via leaves out" in r.output
    assert str(a) in r.output  # the drawn chain
