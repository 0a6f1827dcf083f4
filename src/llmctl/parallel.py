"""Order-preserving parallel map with bounded memory, for the data stages.

`multiprocessing.Pool.imap` reads its whole input ahead, which would hold a corpus in memory;
this keeps at most `2 * workers` chunks in flight and yields results in input order, so the
output is the same whatever the worker count.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_capped: set[int] = set()  # worker counts already reported as capped (say it once per process)


def resolve_workers(workers: int) -> int:
    """0 means all cores available to this process; more than that is capped to it (each worker is
    a process: 100,000 of them would exhaust memory and pids without going any faster)."""
    cpus = cpu_count()
    if workers <= 0:
        return cpus
    if workers > cpus:
        if workers not in _capped:
            from llmctl.console import warn

            warn(f"--workers {workers}: only {cpus} CPUs are available to this process; using {cpus}")
            _capped.add(workers)
        return cpus
    return workers


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
) -> Iterator[R]:
    """fn over items in worker processes; results in input order, at most 2*workers in flight.

    Workers are forked: they inherit the parent's imports and whatever state it prepared (no
    pool initializer: a failing one makes Pool respawn workers forever). The data stages do not
    touch CUDA, so fork is safe here.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    ctx = mp.get_context("fork")
    # Workers never see SIGINT (they inherit it blocked across the fork): Ctrl-C reaches the whole
    # process group, and only the parent should answer it, with one line, not one traceback per
    # worker. Blocked, not ignored: a Ctrl-C while the pool starts stays pending in the parent and is
    # delivered once it is unblocked (ignoring it there lost it, and the stage ran to the end).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = ctx.Pool(workers)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    with pool:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
