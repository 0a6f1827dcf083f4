"""Terminal output: one stderr console, rich progress bars, and the --quiet switch.

Progress and status go to stderr so that stdout stays clean for `--json` and pipes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and info lines (errors still print)."""
    global _quiet
    _quiet = quiet or os.environ.get("LLMCTL_QUIET") == "1"


def is_quiet() -> bool:
    return _quiet


def info(msg: str) -> None:
    if not _quiet:
        err.print(msg)


def warn(msg: str) -> None:
    # one line whatever the width, as errors: a path cut in two cannot be copied or grepped
    err.print(f"[yellow]warning:[/yellow] {msg}", soft_wrap=True)


class _RateColumn(ProgressColumn):
    """Items per second with the task's unit, e.g. '1,234 docs/s'."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        if speed is None:
            return Text(f"? {unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {unit}/s", style="progress.data.speed")


@contextmanager
def progress() -> Iterator[Progress]:
    """A rich Progress on stderr with count, rate and ETA; disabled under --quiet."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=_quiet,
        transient=False,
    )
    with bar:
        yield bar


def track(items: Iterable[T], *, total: int | None, description: str, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar (count, unit/s, ETA)."""
    with progress() as bar:
        task = bar.add_task(description, total=total, unit=unit)
        for item in items:
            yield item
            bar.advance(task)


class DataProgress:
    """Progress of a data stage: a bar over input bytes (for the ETA) plus documents and docs/s."""

    def __init__(self, bar: Progress, task: int):
        self._bar, self._task = bar, task
        self.docs = 0

    def update(self, position: int, docs: int) -> None:
        self.docs += docs
        elapsed = self._bar.tasks[self._task].elapsed or 1e-9
        self._bar.update(
            self._task, completed=position, docs=f"{self.docs:,}", rate=f"{self.docs / elapsed:,.0f}"
        )


@contextmanager
def data_progress(description: str, total_bytes: int) -> Iterator[DataProgress]:
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[docs]} docs"),
        TextColumn("{task.fields[rate]} docs/s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=_quiet,
    )
    with bar:
        task = bar.add_task(description, total=max(1, total_bytes), docs="0", rate="0")
        yield DataProgress(bar, task)
