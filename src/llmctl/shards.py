"""Shard-parallel data stages (SLURM job arrays, the datatrove way).

The input files are split between `num_shards` processes; each writes its part into
`.DIR.staging/<step>/NNNNN/` and marks it done. The process that finds every shard done claims
the merge (an atomic mkdir, safe on shared filesystems) and finishes the artifact; a
`--merge` run does the same explicitly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from llmctl.artifacts import write_atomic
from llmctl.console import info
from llmctl.errors import UserError
from llmctl.formats.documents import Source

DONE = ".done"
MERGING = ".llmctl-merging"


def mine(sources: list[Source], num_shards: int, shard_index: int) -> list[tuple[int, Source]]:
    """This shard's input files, each with its rank in the whole (sorted) input."""
    return [(rank, s) for rank, s in enumerate(sources) if rank % num_shards == shard_index]


def is_done(shard: Path) -> bool:
    return (shard / DONE).is_file()


def start(shard: Path) -> bool:
    """Prepare a shard directory; False when it is already done (resume)."""
    if is_done(shard):
        info(f"{shard.parent.name}/{shard.name}: already done")
        return False
    if shard.exists():
        shutil.rmtree(shard)  # a shard killed half-way starts over
    shard.mkdir(parents=True)
    return True


def finish(shard: Path) -> None:
    write_atomic(shard / DONE, "")


def claim_merge(
    root: Path, staging: Path, num_shards: int, *, merge_only: bool, resume: bool, out: Path
) -> bool:
    """True when this process should merge: every shard is done and no other process merges."""
    missing = [i for i in range(num_shards) if not is_done(root / f"{i:05d}")]
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        if merge_only:
            raise UserError(f"cannot merge {out}: shards {listed} of {num_shards} are not done yet")
        info(f"waiting for shards {listed} before the merge")
        return False
    try:
        os.mkdir(staging / MERGING)
    except FileExistsError:
        if not (merge_only or resume):
            info("another shard is merging")
            return False
    return True


def release_merge(staging: Path) -> None:
    os.rmdir(staging / MERGING)
