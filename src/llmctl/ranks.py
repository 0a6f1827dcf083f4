"""Data-parallel post-training stages (sft, rm, ...): `--nproc N`, and running as one rank under
torchrun or srun.

    llmctl sft MODEL DATA --out DIR --nproc 2            # starts 2 ranks through torchrun
    torchrun --nproc-per-node 2 -m llmctl sft MODEL DATA --out DIR

Rank 0 owns the artifact: it begins it (lock, staging), prepares the data and sends it to the
others, saves, commits. Every rank trains (the trainer shards each global batch over the ranks).
`--nproc N` outside torchrun is a launcher only: it writes the resolved config to a spec file and
starts `python -m llmctl.ranks SPEC` under torchrun; a user error comes back through a status file,
so the user sees it once and torchrun prints no traceback of its own.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmctl import artifacts, launch
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import is_quiet
from llmctl.errors import UserError

Prepared = dict[str, Any]
Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, summary) to commit


def start(cfg: Any, out: Path, stage: str) -> Manifest:
    """`--nproc N` outside torchrun: start cfg.nproc ranks of `stage` (a module with run(cfg)),
    wait, and return the manifest rank 0 committed; their exit code is this command's."""
    import tempfile

    launch.check_loopback()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.spec-", suffix=".json", dir=out.parent)
    spec, status = Path(name), Path(name).with_suffix(".status")
    run = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg.run).items()}
    run["inputs"] = [str(p) for p in cfg.run.inputs]
    run["against"] = [str(p) for p in cfg.run.against]
    cls = type(cfg)
    about = {
        "stage": stage,
        "config_class": f"{cls.__module__}:{cls.__qualname__}",
        "argv": sys.argv,
        "quiet": is_quiet(),
        "status": str(status),
    }
    with os.fdopen(fd, "w") as f:
        json.dump({"config": to_dict(cfg), "run": run, **about}, f)
    try:
        returncode, caught = launch.run(launch.command(cfg.nproc, "llmctl.ranks", str(spec)), cfg.nproc)
        said = json.loads(status.read_text()) if status.is_file() else {}
    finally:
        spec.unlink(missing_ok=True)
        status.unlink(missing_ok=True)
    if caught == signal.SIGINT:
        raise KeyboardInterrupt
    if "user_error" in said:
        raise UserError(said["user_error"])
    if returncode != 0:  # the ranks said why
        raise SystemExit(returncode if returncode in (2, 3) else 1)
    return Manifest.read(out)


def run_as_rank(
    cfg: Any,
    begin: Callable[[], artifacts.StageRun],
    prepare: Callable[[artifacts.StageRun], Prepared],
    train: Callable[[Path, Prepared], Result | None],
) -> Manifest | None:
    """One torchrun worker. Rank 0: `begin()` the artifact and `prepare(art)` the data (a
    picklable dict), broadcast to every rank; all ranks `train(staging, prepared)`; rank 0 commits
    what its train returned. Returns the manifest on rank 0, None elsewhere."""
    import torch
    import torch.distributed as dist

    from llmctl.console import set_quiet

    world, rank = launch.world_size(), launch.rank()
    if cfg.nproc != world:  # the CLI sets nproc from WORLD_SIZE
        raise UserError(f"nproc={cfg.nproc} under torchrun, which started {world} processes")
    gpu = torch.cuda.is_available() and getattr(cfg.train, "device", "auto") != "cpu"
    if gpu:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    if rank != 0:
        set_quiet(True)
    message: list[Any] = [None]
    art = None
    if rank == 0:
        try:
            art = begin()
            if art.done:
                message = [{"done": True}]
            else:
                with artifacts.discard_on_user_error(art):
                    message = [{"staging": str(art.staging.resolve()), "prepared": prepare(art)}]
        except UserError as e:
            message = [{"error": str(e)}]
    dist.broadcast_object_list(message, src=0)
    got = message[0]
    if "error" in got or "done" in got:
        dist.destroy_process_group()
        if "error" in got and rank == 0:
            raise UserError(got["error"])
        if "error" in got:
            raise SystemExit(2)  # rank 0 says why, once
        return art.manifest if art is not None else None
    staging = Path(got["staging"])
    if art is None:
        train(staging, got["prepared"])
        dist.barrier()
        dist.destroy_process_group()
        return None
    with artifacts.discard_on_user_error(art):
        result = train(staging, got["prepared"])
        assert result is not None, "rank 0 returns the metrics to commit"
        manifest = art.commit(*result)
    dist.barrier()
    dist.destroy_process_group()
    return manifest


def barrier() -> None:
    """Wait for every rank (a no-op in a single process): after rank 0 saved what all will read."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes the artifact's files."""
    return launch.rank() == 0


def main() -> None:
    """`python -m llmctl.ranks SPEC.json`: one rank started by `start`."""
    import typer

    from llmctl.cli.common import guard
    from llmctl.config import RunArgs, from_dict
    from llmctl.console import set_quiet

    launch.die_with_parent()  # torchrun's agent dies with the llmctl that started it; so do we
    spec = json.loads(Path(sys.argv[1]).read_text())
    sys.argv = spec["argv"]  # the command the manifest records
    set_quiet(bool(spec.get("quiet")))
    status = Path(spec["status"])
    module, _, cls_name = spec["config_class"].partition(":")
    config_class = getattr(importlib.import_module(module), cls_name)

    @guard
    def one_rank() -> None:
        cfg = from_dict(config_class, spec["config"])
        cfg.run = RunArgs(**spec["run"])
        try:
            importlib.import_module(spec["stage"]).run(cfg)
        except UserError as e:  # rank 0's: the parent says it, once
            status.write_text(json.dumps({"user_error": str(e)}))
        except SystemExit as e:
            if e.code != 2:  # 2: another rank's user error, which rank 0 reports
                raise

    try:
        one_rank()
    except typer.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
