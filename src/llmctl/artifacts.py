"""The artifact contract every stage keeps: staging directory, manifest written last, lineage.

A stage never writes into `--out DIR` directly. It writes into the sibling `.DIR.staging/`,
then `commit()` hashes the outputs, writes `manifest.json` (the "complete" marker, last), and
renames the staging directory into place. A crash or kill -9 at any moment therefore leaves
either no DIR or a complete one; the next run cleans the stale staging directory, or reuses
it with `--resume`.

    art = artifacts.begin("clean", out, config=cfg, inputs=paths, force=False, resume=False)
    if art.done:                     # complete artifact already there: a no-op
        return art.manifest
    ... write files under art.staging ...
    manifest = art.commit(metrics={...}, summary={...})
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from llmctl import __version__
from llmctl.console import info, warn
from llmctl.errors import UserError

MANIFEST = "manifest.json"
STAGING_MARK = ".llmctl-staging.json"
# Libraries whose versions go into every manifest (those installed; none is imported for this).
TRACKED_LIBS = (
    "torch",
    "megatron-core",
    "transformers",
    "tokenizers",
    "trl",
    "peft",
    "datasketch",
    "numpy",
    "pyarrow",
    "zstandard",
    "ftfy",
    "py3langid",
    "resiliparse",
    "typer",
)
_CHUNK = 1 << 20


@dataclass
class Manifest:
    """What manifest.json holds. Its presence in a directory means the artifact is complete."""

    stage: str
    llmctl_version: str
    command: str
    config: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    metrics: dict[str, Any]
    summary: dict[str, Any]
    started: str
    finished: str
    duration_s: float
    host: str
    versions: dict[str, str]
    git_commit: str | None = None

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{directory} is not a complete llmctl artifact (no {MANIFEST})") from None
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: unreadable manifest ({e})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def is_complete(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def staging_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.staging"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".llmctl-"))


def fingerprint(path: str | Path, suffixes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """How an input is recorded: an artifact by its manifest's hash, raw data by its content.

    For a raw directory, `suffixes` limits the hash to the files a stage reads (a README added
    next to the data does not change what was trained on)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"input {p} does not exist")
    if p.is_dir() and is_complete(p):
        m = Manifest.read(p)
        return {"kind": "artifact", "stage": m.stage, "sha256": sha256_file(p / MANIFEST)}
    if p.is_file():
        return {"kind": "file", "bytes": p.stat().st_size, "sha256": sha256_file(p)}
    # a raw directory: hash of (relative path, content hash) over its files, in sorted order
    h = hashlib.sha256()
    n = size = 0
    for f in _tree_files(p):
        if suffixes is not None and not f.name.lower().endswith(suffixes):
            continue
        h.update(os.fsencode(f.relative_to(p).as_posix()) + b"\0" + sha256_file(f).encode() + b"\n")
        n += 1
        size += f.stat().st_size
    entry: dict[str, Any] = {"kind": "dir", "files": n, "bytes": size, "sha256": h.hexdigest()}
    if suffixes is not None:
        entry["suffixes"] = list(suffixes)
    return entry


def record_input(
    path: str | Path, out: str | Path, suffixes: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """An input entry: absolute path, path relative to the artifact (survives moving a tree)."""
    p = Path(path).resolve()
    rel = os.path.relpath(p, Path(out).resolve())
    return {"path": str(p), "relpath": rel, **fingerprint(p, suffixes)}


def resolve_input(entry: dict[str, Any], artifact: Path) -> Path:
    """Where a recorded input is now: relative to the artifact first, then the absolute path."""
    rel = (artifact / entry.get("relpath", "")).resolve() if entry.get("relpath") else None
    if rel is not None and rel.exists():
        return rel
    return Path(entry["path"])


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in TRACKED_LIBS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def git_commit() -> str | None:
    """The llmctl source commit when running from a git checkout ('+dirty' if modified)."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file + fsync + rename, so a reader never sees half a file.

    The temporary name carries the pid: SLURM array tasks may write the same file at once."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # backslashreplace: a non-UTF-8 file name (a lone surrogate) is written as its JSON \udcXX
    # escape, which reads back as the same name
    with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class StageRun:
    """A stage in progress: write under `staging`, then `commit()`."""

    stage: str
    out: Path
    config: dict[str, Any]
    inputs: list[dict[str, Any]]
    staging: Path
    resumed: bool = False
    done: bool = False
    manifest: Manifest | None = None
    started: str = field(default_factory=_now)
    _t0: float = field(default_factory=time.perf_counter)

    def commit(self, metrics: dict[str, Any], summary: dict[str, Any] | None = None) -> Manifest:
        """Hash outputs, write manifest.json last, rename the staging dir into place."""
        outputs = []
        for f in _tree_files(self.staging):
            rel = f.relative_to(self.staging).as_posix()
            if rel == MANIFEST:
                continue
            outputs.append({"path": rel, "bytes": f.stat().st_size, "sha256": sha256_file(f)})
        manifest = Manifest(
            stage=self.stage,
            llmctl_version=__version__,
            command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            config=self.config,
            inputs=self.inputs,
            outputs=outputs,
            metrics=metrics,
            summary=summary if summary is not None else _scalars(metrics),
            started=self.started,
            finished=_now(),
            duration_s=round(time.perf_counter() - self._t0, 3),
            host=socket.gethostname(),
            versions=library_versions(),
            git_commit=git_commit(),
        )
        (self.staging / STAGING_MARK).unlink(missing_ok=True)
        write_atomic(self.staging / MANIFEST, manifest.to_json())
        _fsync_dir(self.staging)
        old = self.out.parent / f".{self.out.name}.old"
        if self.out.exists():  # --force: swap the old artifact out, the new one in, drop the old
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.out, old)
        os.replace(self.staging, self.out)
        _fsync_dir(self.out.parent)
        if old.exists():
            shutil.rmtree(old)
        self.manifest = manifest
        self.done = True
        return manifest


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def begin(
    stage: str,
    out: str | Path,
    *,
    config: dict[str, Any],
    inputs: list[str | Path],
    force: bool = False,
    resume: bool = False,
    shared: bool = False,
    input_suffixes: tuple[str, ...] | None = None,
) -> StageRun:
    """Start a stage: the up-to-date check, then a fresh (or resumed) staging directory.

    input_suffixes: for raw directory inputs, the file types the stage reads (the rest is not
    hashed). shared=True is for shard-parallel runs (SLURM array tasks) that fill one staging directory
    together: an existing one is joined when it was started with the same config, never wiped.
    """
    out = Path(out)
    staging = staging_dir(out)
    if is_complete(out) and not force:
        manifest = Manifest.read(out)
        if manifest.stage != stage:
            raise UserError(
                f"{out} holds a '{manifest.stage}' artifact, not '{stage}'; choose another --out "
                "or pass --force to replace it"
            )
        _report_up_to_date(out, manifest, config, inputs)
        return StageRun(stage, out, config, manifest.inputs, staging, done=True, manifest=manifest)
    if out.exists() and not is_complete(out) and not force:
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(
                f"{out} exists but is not an llmctl artifact (no {MANIFEST}); "
                "remove it, choose another --out, or pass --force to replace it"
            )
        out.rmdir()
    recorded = [record_input(p, out, input_suffixes) for p in inputs]
    out.parent.mkdir(parents=True, exist_ok=True)
    mark = staging / STAGING_MARK
    resumed = False
    previous = _read_mark(mark)
    if staging.exists() and shared:
        if previous is not None and (previous.get("stage"), previous.get("config")) != (stage, config):
            raise UserError(
                f"{staging} belongs to a run with another config; remove it, or run every shard "
                "with the same recipe and flags"
            )
        if previous is None:
            write_atomic(mark, json.dumps({"stage": stage, "config": config, "started": _now()}, indent=2))
        return StageRun(stage, out, config, recorded, staging, resumed=True)
    if staging.exists():
        if resume and previous is not None and previous.get("stage") == stage:
            resumed = True
            info(f"resuming from {staging}")
        else:
            if resume:
                warn(f"{staging} has nothing to resume from; starting fresh")
            shutil.rmtree(staging)
    elif resume:
        info(f"no staging directory at {staging}; starting fresh")
    if not resumed:
        staging.mkdir(parents=True, exist_ok=shared)  # shards may race to create it
        write_atomic(mark, json.dumps({"stage": stage, "config": config, "started": _now()}, indent=2))
    return StageRun(stage, out, config, recorded, staging, resumed=resumed)


def _read_mark(mark: Path) -> dict[str, Any] | None:
    try:
        return json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _report_up_to_date(out: Path, manifest: Manifest, config: dict[str, Any], inputs: list) -> None:
    info(f"{out} is up to date ({manifest.stage}, finished {manifest.finished}); nothing to do")
    if manifest.config != config:
        changed = sorted(_diff_keys(manifest.config, config))
        warn(
            f"the config differs from the one {out} was built with ({', '.join(changed[:5])}); "
            "pass --force to rebuild"
        )
    recorded = {e["path"] for e in manifest.inputs}
    given = {str(Path(p).resolve()) for p in inputs}
    if recorded != given:
        warn(f"the inputs differ from the ones {out} was built from; pass --force to rebuild")


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out.extend(_diff_keys(a.get(k), b.get(k), f"{prefix}{k}."))
        return out
    return [] if a == b else [prefix.rstrip(".")]


# ---------------------------------------------------------------- lineage


@dataclass
class Node:
    """One step of an artifact's lineage: an artifact or a raw input, and whether it still matches."""

    path: Path
    kind: str
    stage: str | None
    summary: dict[str, Any]
    status: str  # "ok", "changed", "missing"
    parents: list[Node]
    detail: str = ""


def lineage(directory: str | Path) -> Node:
    """Walk an artifact's inputs back to raw files, re-hashing each recorded input."""
    root = Path(directory)
    m = Manifest.read(root)
    return Node(root, "artifact", m.stage, m.summary, "ok", _parents(root, m))


def _parents(artifact: Path, m: Manifest) -> list[Node]:
    nodes = []
    for entry in m.inputs:
        p = resolve_input(entry, artifact)
        kind = entry["kind"]
        if not p.exists():
            nodes.append(Node(p, kind, entry.get("stage"), {}, "missing", [], "no longer exists"))
            continue
        suffixes = tuple(entry["suffixes"]) if "suffixes" in entry else None
        now = fingerprint(p, suffixes)
        status = "ok" if now["sha256"] == entry["sha256"] and now["kind"] == kind else "changed"
        detail = "" if status == "ok" else f"recorded sha256 {entry['sha256'][:12]}, now {now['sha256'][:12]}"
        if kind == "artifact" and is_complete(p):
            pm = Manifest.read(p)
            nodes.append(Node(p, kind, pm.stage, pm.summary, status, _parents(p, pm), detail))
        else:
            info_ = {k: entry[k] for k in ("files", "bytes") if k in entry}
            nodes.append(Node(p, kind, None, info_, status, [], detail))
    return nodes


def problems(node: Node) -> list[Node]:
    """Every node in the lineage whose content changed or disappeared."""
    found = [node] if node.status != "ok" else []
    for p in node.parents:
        found.extend(problems(p))
    return found


@contextlib.contextmanager
def discard_on_user_error(art: StageRun) -> Iterator[None]:
    """A user error after the staging directory was made (a model that does not load, a corpus
    with no text) leaves nothing behind: a fresh staging directory is removed; a resumed one is
    kept, since it holds earlier work."""
    try:
        yield
    except UserError:
        if not art.resumed:
            shutil.rmtree(art.staging, ignore_errors=True)
        raise
