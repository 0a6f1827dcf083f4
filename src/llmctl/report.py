"""Human-readable views of manifests: `llmctl inspect`, `lineage` and `summary`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.tree import Tree

from llmctl.artifacts import Manifest
from llmctl.console import out
from llmctl.lineage import Node


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _flat(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict) and v and all(not isinstance(x, dict) for x in v.values()) and len(v) > 6:
            rows.append((prefix + k, v))
        elif isinstance(v, dict) and v:
            rows.extend(_flat(v, f"{prefix}{k}."))
        else:
            rows.append((prefix + k, v))
    return rows


def print_manifest(directory: Path, m: Manifest) -> None:
    out.print(
        f"[bold]{directory}[/bold]  stage [cyan]{m.stage}[/cyan]  llmctl {m.llmctl_version}"
        + (f" ({m.git_commit[:12]})" if m.git_commit else "")
    )
    out.print(f"finished {m.finished} on {m.host} in {m.duration_s:.1f}s")
    out.print(f"command: {m.command}")
    t = Table(title="metrics", show_header=False, title_justify="left")
    for k, v in _flat(m.metrics):
        t.add_row(k, _fmt(v))
    out.print(t)
    t = Table(title="inputs", title_justify="left")
    for col in ("path", "kind", "sha256"):
        t.add_column(col)
    for e in m.inputs:
        t.add_row(e["path"], e["kind"] + (f" ({e['stage']})" if e.get("stage") else ""), e["sha256"][:16])
    out.print(t)
    total = sum(o["bytes"] for o in m.outputs)
    out.print(f"outputs: {len(m.outputs)} files, {_size(total)}")
    t = Table(title="config", show_header=False, title_justify="left")
    for k, v in _flat(m.config):
        t.add_row(k, _fmt(v))
    out.print(t)
    out.print("versions: " + ", ".join(f"{k} {v}" for k, v in m.versions.items()))


def _label(node: Node) -> str:
    status = {
        "ok": "[green]ok[/green]",
        "changed": "[red bold]CHANGED[/red bold]",
        "missing": "[red bold]MISSING[/red bold]",
    }[node.status]
    what = f"[cyan]{node.stage}[/cyan]" if node.stage else node.kind
    metrics = "  ".join(f"{k}={_fmt(v)}" for k, v in list(node.summary.items())[:6])
    detail = f"  ({node.detail})" if node.detail else ""
    return f"{node.path}  {what}  {status}  {metrics}{detail}"


def print_lineage(root: Node) -> None:
    """The lineage as a tree; an artifact reached a second time (a diamond) is not expanded again."""
    tree = Tree(_label(root))
    shown: set[int] = set()

    def add(parent: Tree, node: Node) -> None:
        for p in node.parents:
            if p.parents and id(p.parents) in shown:
                parent.add(_label(p) + "  (inputs shown above)")
                continue
            shown.add(id(p.parents))
            add(parent.add(_label(p)), p)

    add(tree, root)
    out.print(tree)


def lineage_json(node: Node, _shown: set[int] | None = None) -> dict[str, Any]:
    """The lineage as nested dicts; an artifact reached again lists its inputs as "see above"."""
    shown = set() if _shown is None else _shown
    repeat = bool(node.parents) and id(node.parents) in shown
    shown.add(id(node.parents))
    return {
        "path": str(node.path),
        "kind": node.kind,
        "stage": node.stage,
        "status": node.status,
        "summary": node.summary,
        "detail": node.detail,
        "inputs": "see above" if repeat else [lineage_json(p, shown) for p in node.parents],
    }


def print_summary(directories: list[Path]) -> None:
    t = Table(title="llmctl summary", title_justify="left")
    for col in ("artifact", "stage", "seconds", "key metrics"):
        t.add_column(col)
    for d in directories:
        m = Manifest.read(d)
        metrics = "  ".join(f"{k}={_fmt(v)}" for k, v in m.summary.items())
        t.add_row(str(d), m.stage, f"{m.duration_s:.1f}", metrics)
    out.print(t)
