"""What every `llmctl` command shares: option types, the error guard, config resolution.

    from llmctl.cli.common import ConfigOpt, OutOpt, guard, stage_config

A stage command declares its options with these types, wraps itself in `guard` (user errors
-> one line and exit 2, runtime failures -> exit 1, Ctrl-C -> 130) and turns its options into
the stage's config with `stage_config`, which reads the table of option -> config key that the
stage's config module keeps (`CLI_KEYS`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llmctl.errors import Incomplete, UserError

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

# ---------------------------------------------------------------- options shared by the stages

OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Artifact directory to create. Written via a staging dir; manifest.json last."
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Recipe YAML (recipes/STAGE/NAME.yaml).",
        exists=True,
        dir_okay=False,
        show_default="none: built-in defaults",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe key, KEY=VALUE (repeatable).", show_default="none"),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Rebuild even if a complete artifact exists at --out.", show_default="off"),
]
NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        help="Data-parallel ranks on this node, started through torchrun (gloo on CPU, NCCL on GPUs); "
        "train.batch_size is per rank. Under torchrun or srun each process is one rank and this is the "
        "launcher's count.",
        show_default="1",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue from the staging directory of a killed run.", show_default="off"),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes; 0 = all cores.", show_default="0")]
NumShardsOpt = Annotated[
    int | None,
    typer.Option(
        help="Split the input files into N shards (SLURM job array); default $SLURM_ARRAY_TASK_COUNT or 1.",
        show_default="1",
    ),
]
ShardIndexOpt = Annotated[
    int | None,
    typer.Option(help="The shard this process runs; default $SLURM_ARRAY_TASK_ID or 0.", show_default="0"),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(help="Where the model runs: auto (CUDA when present), cpu or cuda.", show_default="auto"),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        help="Model weights dtype: float32, bfloat16, float16, or auto (bfloat16 on a GPU, float32 on CPU).",
        show_default="float32",
    ),
]
VerifyOpt = Annotated[
    bool | None,
    typer.Option(
        "--verify-inputs/--no-verify-inputs",
        help="Check input artifacts' files against their manifests by sha256: all files, or none "
        "(sizes are always checked).",
        show_default="sha256 of files under 64 MiB, 1 GiB per artifact",
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or info lines.", show_default="off")
]


def default(cls: type, key: str) -> str:
    """A config key's dataclass default as --help shows it."""
    from llmctl.config import default_of

    value = default_of(cls, key)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


# ---------------------------------------------------------------- errors and exit codes


def guard(fn: F) -> F:
    """User errors -> one line and exit 2; other failures -> exit 1 (traceback with LLMCTL_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.markup import escape  # a message's own brackets ('llmctl[int8]') are text, not markup

        from llmctl.console import err

        debug = os.environ.get("LLMCTL_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if "llmctl.locks" in sys.modules:  # a run stopped by a user error leaves no lock file
                sys.modules["llmctl.locks"].release_all_locks()
            if debug:
                raise
            err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except Incomplete as e:
            err.print(f"[yellow]incomplete:[/yellow] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            from llmctl.artifacts import active_staging

            staging = active_staging()
            where = f"staging kept at {staging}" if staging else "nothing written"
            err.print(f"interrupted; {where}; `--resume` continues", soft_wrap=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:
            if debug:
                raise
            full = _no_space(e)
            if full is not None:  # a full disk is a runtime failure, but one line says it all
                from llmctl.artifacts import no_space_message

                err.print(f"[red]failed:[/red] {no_space_message(full)}", soft_wrap=True)
                raise typer.Exit(1) from None
            err.print(f"[red]failed:[/red] {type(e).__name__}: {escape(str(e))}", soft_wrap=True)
            err.print("(run with LLMCTL_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _no_space(e: BaseException | None) -> OSError | None:
    """The ENOSPC OSError behind an exception (itself, or what it was raised from), if any."""
    import errno

    for _ in range(5):
        if e is None:
            return None
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return e
        e = e.__cause__ or e.__context__
    return None


# ---------------------------------------------------------------- options -> config


def setup(quiet: bool, verify_inputs: bool | None) -> None:
    """The process-wide switches every stage command takes: --quiet and --verify-inputs."""
    from llmctl import artifacts
    from llmctl.console import set_quiet

    set_quiet(quiet)
    artifacts.set_verify_inputs(verify_inputs)


def flags(params: dict[str, Any], cli_keys: dict[str, str]) -> dict[str, Any]:
    """{config key: value} of the options in `cli_keys` (option name -> key); an option not given
    is None and sets nothing. Paths become strings and an empty list counts as not given."""
    out: dict[str, Any] = {}
    for name, key in cli_keys.items():
        value = params.get(name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list) and not value:
            value = None
        out[key] = value
    return out


def stage_config(
    ctx: typer.Context,
    cls: type[C],
    cli_keys: dict[str, str],
    extra: dict[str, Any] | None = None,
    **run: Any,
) -> C:
    """The stage's config from a command's options: --quiet/--verify-inputs first, then the recipe
    (--config), --set and the options named in `cli_keys` (plus `extra` keys), with
    `cfg.run = RunArgs(out=--out, force=--force, resume=--resume, **run)`."""
    from llmctl import config as cfgmod

    p = ctx.params
    setup(p.get("quiet", False), p.get("verify_inputs"))
    args = cfgmod.RunArgs(out=p.get("out"), force=p.get("force", False), resume=p.get("resume", False), **run)
    return cfgmod.load(cls, p.get("config"), p.get("set_"), {**flags(p, cli_keys), **(extra or {})}, run=args)


def print_summary(directories: list[Path]) -> None:
    """One table row per artifact (what a stage command prints when it committed)."""
    from llmctl.report import print_summary as table

    table(directories)
