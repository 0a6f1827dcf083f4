"""Checkpoints within a large task: its items are scored in chunks, each chunk's per-item scores
written atomically, so that `llmctl eval --resume` after a kill continues from the last whole chunk.

    llmctl eval MODEL --out DIR --tasks mmlu.yaml --set chunk_items=500
    # killed (kill -9, a preempted SLURM job) ...
    llmctl eval MODEL --out DIR --tasks mmlu.yaml --set chunk_items=500 --resume

The chunks of a task live in `items/MODEL/TASK.chunks/NNNNN.jsonl` while the task runs; once the
whole task's `items/MODEL/TASK.jsonl` is written (the per-task resume point), they are removed.
The chunking is fixed by the recorded config (chunk_items), so an uninterrupted run and a resumed
one score the same chunks in the same batches and agree exactly. A task of at most chunk_items
items is one chunk, scored as before, with no chunk file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmctl import artifacts
from llmctl.console import info
from llmctl.eval.tasks import Task

Scorer = Callable[[Task, int], list[dict[str, Any]]]  # (a task holding one chunk, chunk number)


def directory(items_file: Path) -> Path:
    return items_file.with_suffix(".chunks")


def score(
    task: Task, items_file: Path, chunk_items: int, resumed: bool, scorer: Scorer
) -> list[dict[str, Any]]:
    """Every item's scores, chunk by chunk; with `resumed`, chunks a killed run wrote are read back."""
    n = len(task.items)
    if n <= chunk_items:
        return scorer(task, 0)
    where = directory(items_file)
    out: list[dict[str, Any]] = []
    reused = 0
    for k, start in enumerate(range(0, n, chunk_items)):
        part = replace(task, items=task.items[start : start + chunk_items])
        path = where / f"{k:05d}.jsonl"
        rows = _read(path, part) if resumed else None
        if rows is None:
            rows = scorer(part, k)
            _write(path, part, rows)
        else:
            reused += 1
        out += rows
    if reused:
        info(f"{task.name}: {reused} of {-(-n // chunk_items)} chunks scored before the interruption; reused")
    return out


def discard(items_file: Path) -> None:
    """The task's chunks, once its whole items file is written."""
    shutil.rmtree(directory(items_file), ignore_errors=True)


def _write(path: Path, part: Task, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"index": it.index, **r}, ensure_ascii=False) + "\n"
        for it, r in zip(part.items, rows, strict=True)
    ]
    artifacts.write_atomic(path, "".join(lines))  # present means complete


def _read(path: Path, part: Task) -> list[dict[str, Any]] | None:
    """The chunk's rows when a killed run wrote them for exactly these items, else None."""
    try:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError):
        return None
    if [r.get("index") for r in rows] != [it.index for it in part.items]:
        return None
    return [{k: v for k, v in r.items() if k != "index"} for r in rows]
