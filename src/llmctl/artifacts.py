"""The artifact contract every stage keeps: staging directory, manifest written last, inputs
recorded with their hashes (`llmctl.lineage` walks them back; `llmctl.locks` keeps one run per --out).

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
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from llmctl import __version__, locks
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
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: unreadable manifest ({e})") from None
        problem = _malformed(data)
        if problem:
            raise UserError(f"{path}: malformed manifest ({problem}); rebuild the artifact with --force")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "stage": str,
    "llmctl_version": str,
    "command": str,
    "config": dict,
    "inputs": list,
    "outputs": list,
    "metrics": dict,
    "summary": dict,
    "started": str,
    "finished": str,
    "duration_s": (int, float),
    "host": str,
    "versions": dict,
}
_INPUT_TYPES: dict[str, type | tuple[type, ...]] = {"path": str, "kind": str, "sha256": str}
_OUTPUT_TYPES: dict[str, type | tuple[type, ...]] = {"path": str, "bytes": int, "sha256": str}


def _malformed(data: Any) -> str | None:
    """What is wrong with a manifest's shape (None when nothing): every reader (inspect,
    lineage, summary, a stage reading its input) relies on these keys and types."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for key, typ in _FIELD_TYPES.items():
        if key not in data:
            return f"no '{key}'"
        if not isinstance(data[key], typ) or isinstance(data[key], bool):
            return f"'{key}' is a {type(data[key]).__name__}"
    for what, types in (("inputs", _INPUT_TYPES), ("outputs", _OUTPUT_TYPES)):
        for i, entry in enumerate(data[what]):
            if not isinstance(entry, dict):
                return f"{what}[{i}] is a {type(entry).__name__}, not an object"
            for key, typ in types.items():
                if not isinstance(entry.get(key), typ) or isinstance(entry.get(key), bool):
                    return f"{what}[{i}] has no {typ.__name__ if isinstance(typ, type) else 'number'} '{key}'"
    for i, entry in enumerate(data["inputs"]):
        if entry["kind"] not in ("artifact", "file", "dir"):
            return f"inputs[{i}] has the unknown kind {entry['kind']!r}"
        if not isinstance(entry.get("relpath", ""), str):
            return f"inputs[{i}]: 'relpath' is not a string"
        if not isinstance(entry.get("suffixes", []), list):
            return f"inputs[{i}]: 'suffixes' is not a list"
        for key in ("bytes", "files"):
            if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool)):
                return f"inputs[{i}]: '{key}' is not an integer"
    return None


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


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sha256_regular(path: str | Path, expect_bytes: int | None = None) -> str | None:
    """sha256 of a regular file, reading no more than its size; None when `path` is not a
    regular file or not `expect_bytes` long. Never blocks: a FIFO or device is never opened for
    reading (O_NONBLOCK, then fstat), and a file whose size reads 0 (procfs reports 0 for
    /proc/kmsg, which blocks on read) is not read at all."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (expect_bytes is not None and st.st_size != expect_bytes):
            return None
        h, left = hashlib.sha256(), st.st_size
        while left > 0 and (chunk := os.read(fd, min(_CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
        return h.hexdigest() if left == 0 else None
    finally:
        os.close(fd)


def _tree_files(root: Path, limit: int | None = None) -> list[Path]:
    """Regular files under root (symlinked files followed, symlinked directories not, like
    Path.rglob), sorted; None-safe bound: with `limit`, stop after visiting that many entries."""
    found: list[Path] = []
    stack, visited = [root], 0
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            visited += 1
            if limit is not None and visited > limit:
                raise TooManyFiles
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif e.is_file() and not e.name.startswith(".llmctl-"):
                found.append(Path(e.path))
    return sorted(found)


class TooManyFiles(Exception):
    """A tree larger than the one recorded: changed, without hashing it."""


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
        digest = sha256_regular(p)
        if digest is None:
            raise UserError(f"input {p} is not a regular file")
        return {"kind": "file", "bytes": p.stat().st_size, "sha256": digest}
    if not p.is_dir():
        raise UserError(f"input {p} is neither a file nor a directory")
    return dir_fingerprint(p, suffixes)


def dir_fingerprint(
    p: Path, suffixes: tuple[str, ...] | None, limit: int | None = None, max_files: int | None = None
) -> dict[str, Any]:
    """A raw directory: hash of (relative path, content hash) over its files, in sorted order.
    limit/max_files bound the walk when checking a recorded tree (raises TooManyFiles)."""
    h = hashlib.sha256()
    n = size = 0
    for f in _tree_files(p, limit):
        if suffixes is not None and not f.name.lower().endswith(suffixes):
            continue
        n += 1
        if max_files is not None and n > max_files:
            raise TooManyFiles
        digest = sha256_regular(f)
        if digest is None:
            raise TooManyFiles if limit is not None else UserError(f"input {f} is not a regular file")
        h.update(os.fsencode(f.relative_to(p).as_posix()) + b"\0" + digest.encode() + b"\n")
        size += f.stat().st_size
    entry: dict[str, Any] = {"kind": "dir", "files": n, "bytes": size, "sha256": h.hexdigest()}
    if suffixes is not None:
        entry["suffixes"] = list(suffixes)
    return entry


# How input artifacts are checked against their manifests before a stage uses them (sizes are
# always checked): None = sha256 of each file under HASH_BELOW, up to HASH_BUDGET per artifact
# (a corpus of many shards is not re-read in full by default); True = every file; False = none.
HASH_BELOW = 64 << 20
HASH_BUDGET = 1 << 30
_verify_inputs: bool | None = None


def set_verify_inputs(mode: bool | None) -> None:
    """--verify-inputs (True), --no-verify-inputs (False), or the default (None)."""
    global _verify_inputs
    _verify_inputs = mode


def check_artifact(directory: str | Path, verify: bool | None = None) -> None:
    """Exit 2 naming the file when an input artifact's files do not match its manifest: a file
    missing, of another size (truncated), or (when hashed; see set_verify_inputs) of another
    sha256. Every stage calls this (through begin) for each artifact it reads."""
    root = Path(directory)
    m = Manifest.read(root)
    mode = _verify_inputs if verify is None else verify
    hashed = 0
    fix = f"rebuild it (llmctl ... --out {root} --force) or restore the file"
    for o in m.outputs:
        rel = Path(o["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(f"{root / MANIFEST}: output path {o['path']!r} leaves the artifact")
        f = root / rel
        try:
            st = os.stat(f)
        except OSError:
            raise UserError(
                f"input artifact {root}: {f} is missing (its manifest records it); {fix}"
            ) from None
        if not stat.S_ISREG(st.st_mode) or st.st_size != o["bytes"]:
            raise UserError(
                f"input artifact {root}: {f} is {st.st_size:,} bytes, its manifest records {o['bytes']:,} "
                f"(truncated or changed); {fix}"
            )
        want = mode is True or (
            mode is None and st.st_size < HASH_BELOW and hashed + st.st_size <= HASH_BUDGET
        )
        if want:
            hashed += st.st_size
            if sha256_regular(f, o["bytes"]) != o["sha256"]:
                raise UserError(
                    f"input artifact {root}: {f} does not match the sha256 its manifest records "
                    f"(changed since it was written); {fix}"
                )


def record_input(
    path: str | Path, out: str | Path, suffixes: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """An input entry: absolute path, path relative to the artifact (survives moving a tree).
    An input artifact is first checked against its manifest (check_artifact)."""
    p = Path(path).resolve()
    if p.is_dir() and is_complete(p):
        check_artifact(p)
    rel = os.path.relpath(p, Path(out).resolve())
    return {"path": str(p), "relpath": rel, **fingerprint(p, suffixes)}


def resolve_input(entry: dict[str, Any], artifact: Path) -> Path:
    """Where a recorded input is now: relative to the artifact first, then the absolute path.

    The relative path is followed only where it leads to the input the manifest names (same
    final name, a relative path): a hand-edited `relpath: ../../etc/passwd` is not followed."""
    path = Path(entry["path"])
    relpath = entry.get("relpath")
    if relpath and not Path(relpath).is_absolute():
        rel = (artifact / relpath).resolve()
        if rel.name == path.name and rel.exists():
            return rel
    return path


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


def _program() -> str:
    """The command's name as a user would type it: `python -m llmctl` (torchrun's ranks, srun)
    runs llmctl/__main__.py, which is `llmctl` too."""
    name = Path(sys.argv[0]).name
    return "llmctl" if name == "__main__.py" and "llmctl" in Path(sys.argv[0]).parts else name


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
        outputs, stats = [], {}
        for f in _tree_files(self.staging):
            rel = f.relative_to(self.staging).as_posix()
            if rel == MANIFEST:
                continue
            stats[rel] = _stat_key(f)
            outputs.append({"path": rel, "bytes": stats[rel][0], "sha256": sha256_file(f)})
        manifest = Manifest(
            stage=self.stage,
            llmctl_version=__version__,
            command=shlex.join([_program(), *sys.argv[1:]]),
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
        self._verify(outputs, stats)
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
        locks.release_lock(self.out)
        if self.staging in _ACTIVE:
            _ACTIVE.remove(self.staging)
        self.manifest = manifest
        self.done = True
        return manifest

    def _verify(self, outputs: list[dict[str, Any]], stats: dict[str, tuple[int, ...]]) -> None:
        """Just before the manifest: the outputs are the files hashed, unchanged since.

        A file whose size, mtime, ctime or inode moved is hashed again and must still match, so
        a file changed under the run fails the commit instead of committing a wrong hash."""
        now = {f.relative_to(self.staging).as_posix() for f in _tree_files(self.staging)} - {MANIFEST}
        if now != set(stats):
            added, gone = sorted(now - set(stats)), sorted(set(stats) - now)
            raise RuntimeError(
                f"the outputs of {self.out} changed while it was committed (appeared: {added[:3]}, "
                f"gone: {gone[:3]}); nothing committed, staging kept at {self.staging}"
            )
        for o in outputs:
            f = self.staging / o["path"]
            if _stat_key(f) != stats[o["path"]] and sha256_file(f) != o["sha256"]:
                raise RuntimeError(
                    f"{f} changed while {self.out} was committed (another process writing it?); "
                    f"nothing committed, staging kept at {self.staging}"
                )


def _stat_key(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


_ACTIVE: list[Path] = []  # staging directories this process is writing (for error messages)


def active_staging() -> Path | None:
    """The staging directory of the run in progress in this process, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


def no_space_message(e: OSError) -> str:
    """'no space left on device while writing PATH; staging kept at PATH (N MB)'."""
    what = e.filename or "a file"
    line = f"no space left on device while writing {what}"
    staging = active_staging()
    if staging is not None and staging.exists():
        size = 0
        for root, _, files in os.walk(staging):
            for name in files:
                try:
                    size += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        line += (
            f"; staging kept at {staging} ({size / 2**20:,.0f} MB): free space, then --resume or remove it"
        )
    return line


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
    # before anything else: the up-to-date check, the staging clean-up and the commit all belong
    # to one run at a time (two runs on one --out deleted each other's staging)
    locks.acquire_lock(out, shared=shared)
    if is_complete(out) and not force:
        manifest = Manifest.read(out)
        if manifest.stage != stage:
            raise UserError(
                f"{out} holds a '{manifest.stage}' artifact, not '{stage}'; choose another --out "
                "or pass --force to replace it"
            )
        _report_up_to_date(out, manifest, config, inputs)
        locks.release_lock(out)
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
        _ACTIVE.append(staging)
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
    _ACTIVE.append(staging)
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
