"""Starting ranks: torchrun for the local processes of `--nproc N`, and what a stage needs to know
when it is itself one of torchrun's workers (started by `torchrun ... -m llmctl STAGE` or srun).

pretrain and sft share it: the parent starts `python -m torch.distributed.run --standalone` in its
own process group, forwards SIGTERM/SIGINT to it (SLURM's warning before a time-limit kill) and
dies with it (a rank must never outlive the `llmctl` that owns its --out lock).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Any

from llmctl.errors import UserError

LOOPBACK = "127.0.0.1"
"""Where the ranks of a single-node run meet (torch.distributed's store, torchrun --standalone)."""

_LAUNCHER_VARS = {
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "ROLE_NAME",
    "MASTER_ADDR",
    "MASTER_PORT",
}


def under_torchrun() -> bool:
    """Started by torchrun (torch.distributed.run) as one of its workers."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def resolve_nproc(nproc: int | None) -> int | None:
    """The `nproc` key from --nproc: under torchrun the launcher decided the process count, and a
    different --nproc is a user error; otherwise --nproc as given (None: the recipe's)."""
    if not under_torchrun():
        return nproc
    if nproc is not None and nproc != world_size():
        raise UserError(f"--nproc {nproc} under torchrun, which started {world_size()} processes")
    return world_size()


def check_loopback() -> None:
    """Without a usable loopback interface torch.distributed retries the rendezvous for 30 minutes:
    find out in milliseconds by binding a socket there (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
    except OSError as e:
        raise RuntimeError(
            f"cannot bind a socket to {LOOPBACK} ({e.strerror or e}): the ranks of a single-node run "
            "meet there; bring the loopback interface up (ip link set lo up), or start the ranks "
            "yourself under torchrun with a reachable --master-addr"
        ) from None


def command(nproc: int, module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS` for one process, torchrun's standalone form for several."""
    if nproc == 1:
        return [sys.executable, "-m", module, *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        module,
        *args,
    ]


def child_env(nproc: int = 1) -> dict[str, str]:
    """This environment without the launcher's variables (under torchrun this process's
    RANK/WORLD_SIZE/MASTER_* are not the child's), and the CPU threads shared out among the ranks
    when OMP_NUM_THREADS is unset (torchrun would set 1, with a banner saying so)."""
    env = {
        k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS and not k.startswith("TORCHELASTIC")
    }
    if nproc > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // nproc))
    return env


def run(cmd: list[str], nproc: int = 1) -> tuple[int, int | None]:
    """Run the ranks in their own process group and pass SIGTERM/SIGINT on to it, then wait:
    the ranks checkpoint at the next step boundary and exit (SLURM sends SIGTERM before the kill
    at a time limit). Returns (exit code, the signal caught or None)."""
    proc = subprocess.Popen(cmd, env=child_env(nproc), start_new_session=True, preexec_fn=die_with_parent)
    caught: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        caught.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        returncode = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return returncode, (caught[0] if caught else None)


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (a kill -9 of `llmctl` releases its lock on
    --out; a rank left training would write into a staging dir another run may own). Called in
    the child before exec, and by a torchrun worker for itself (its parent is torchrun's agent)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
