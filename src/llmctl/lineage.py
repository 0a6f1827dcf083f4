"""An artifact's lineage: its recorded inputs walked back to the raw data, each re-checked.

root = lineage.lineage("runs/demo/eval")       # llmctl lineage runs/demo/eval
for node in lineage.problems(root): print(node.path, node.status, node.detail)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl.artifacts import (
    MANIFEST,
    Manifest,
    TooManyFiles,
    dir_fingerprint,
    is_complete,
    resolve_input,
    sha256_regular,
)
from llmctl.errors import UserError


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


MAX_DEPTH = 64  # stages in a chain; a real one has about ten
MAX_NODES = 10_000  # artifacts and raw inputs in one lineage


def lineage(directory: str | Path) -> Node:
    """Walk an artifact's inputs back to raw files, re-checking each recorded input.

    Only what a manifest recorded is read: a file input when it is a regular file of the
    recorded size, a directory input until it holds more than the recorded files. A manifest
    that names itself or an ancestor (a cycle), or a chain deeper than MAX_DEPTH, is exit 2."""
    root = Path(directory)
    m = Manifest.read(root)
    walk = _Walk()
    return Node(root, "artifact", m.stage, m.summary, "ok", walk.parents(root, m, (root.resolve(),)))


class _Walk:
    def __init__(self) -> None:
        self.nodes = 0
        self.done: dict[Path, list[Node]] = {}  # an artifact reached twice (a diamond) is walked once

    def parents(self, artifact: Path, m: Manifest, ancestors: tuple[Path, ...]) -> list[Node]:
        if len(ancestors) > MAX_DEPTH:
            raise UserError(f"{artifact / MANIFEST}: lineage deeper than {MAX_DEPTH} artifacts")
        key = artifact.resolve()
        if key in self.done:
            return self.done[key]
        nodes = []
        for entry in m.inputs:
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise UserError(f"{artifact / MANIFEST}: lineage of more than {MAX_NODES} inputs")
            p = resolve_input(entry, artifact)
            kind = entry["kind"]
            if not p.exists():
                nodes.append(Node(p, kind, entry.get("stage"), {}, "missing", [], "no longer exists"))
                continue
            if kind == "artifact" and p.resolve() in ancestors:
                raise UserError(
                    f"{artifact / MANIFEST}: lineage cycle: input {p} is this artifact "
                    "or one it was built from"
                )
            now, detail = _recheck(p, entry)
            status = "ok" if now == entry["sha256"] else "changed"
            if status != "ok" and not detail:
                detail = f"recorded sha256 {entry['sha256'][:12]}, now {(now or '?')[:12]}"
            if kind == "artifact" and is_complete(p):
                pm = Manifest.read(p)
                up = self.parents(p, pm, (*ancestors, p.resolve()))
                nodes.append(Node(p, kind, pm.stage, pm.summary, status, up, detail))
            else:
                info_ = {k: entry[k] for k in ("files", "bytes") if k in entry}
                nodes.append(Node(p, kind, None, info_, status, [], detail))
        self.done[key] = nodes
        return nodes


def _recheck(p: Path, entry: dict[str, Any]) -> tuple[str | None, str]:
    """(sha256 now or None, why not) of a recorded input, reading no more than was recorded."""
    kind = entry["kind"]
    if kind == "artifact":
        if not (p.is_dir() and is_complete(p)):
            return None, "no longer a complete artifact"
        return sha256_regular(p / MANIFEST), ""
    if kind == "file":
        digest = sha256_regular(p, entry.get("bytes"))
        return digest, "" if digest is not None else "not a regular file of the recorded size"
    if not p.is_dir():
        return None, "no longer a directory"
    suffixes = tuple(entry["suffixes"]) if "suffixes" in entry else None
    files = entry.get("files")
    limit = max(10_000, 20 * files) if isinstance(files, int) else 10_000
    try:
        return dir_fingerprint(p, suffixes, limit=limit, max_files=files)["sha256"], ""
    except TooManyFiles:
        return None, "the directory holds more than the recorded files"


def only_via(root: Node, via: list[Path]) -> Node:
    """The root with only the inputs named by --via (the path of an input, or of a directory in
    it such as MODEL/hf); the others become one "not shown" note. Exit 2 for a path that is no
    input of the root, naming its inputs."""
    keep: list[Node] = []
    for v in via:
        want = Path(v).resolve()
        hit = [p for p in root.parents if p.path.resolve() == want or p.path.resolve() in want.parents]
        if not hit:
            names = ", ".join(str(p.path) for p in root.parents if p.kind == "artifact") or "none"
            raise UserError(f"--via {v}: not an input of {root.path} (its artifact inputs: {names})")
        keep += [p for p in hit if p not in keep]
    others = len(root.parents) - len(keep)
    detail = f"{others} other input(s) not shown" if others else ""
    return Node(root.path, root.kind, root.stage, root.summary, root.status, keep, detail)


def problems(node: Node) -> list[Node]:
    """Every node in the lineage whose content changed or disappeared (each once)."""
    found, seen, stack = [], set(), [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.status != "ok":
            found.append(n)
        stack.extend(reversed(n.parents))
    return found
