"""requirements.lock agrees with pyproject.toml and constraints.txt, and never names a CUDA torch."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(m[1]): m[2] for line in path.read_text().splitlines() if (m := PIN.match(line))}


LOCK = pins(REPO / "requirements.lock")


def test_lock_leaves_torch_and_cuda_out():
    # torch is installed first, on its own (the CPU build); the lock must not replace it
    cuda = [n for n in LOCK if n in ("torch", "triton") or n.startswith(("nvidia-", "cuda-"))]
    assert not cuda, f"requirements.lock names {cuda}: run `make lock` where pip finds the CPU torch"


def test_every_lock_entry_is_hashed():
    text = (REPO / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    for entry in entries:
        if PIN.match(entry):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_lock_satisfies_pyproject():
    # catches a pyproject.toml edited without `make lock`
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in LOCK, f"{req} is not in requirements.lock: run `make lock`"
        locked = LOCK[name]
        assert req.specifier.contains(locked, prereleases=True), f"lock has {name}=={locked}, not {req}"


def test_lock_keeps_the_stack_constraints():
    constraints = pins(REPO / "constraints.txt")
    assert constraints["numpy"] == "2.2.6" and constraints["megatron-core"] == "0.16.1"
    for name, version in constraints.items():
        if name in LOCK:
            assert LOCK[name] == version, f"lock has {name}=={LOCK[name]}, constraints.txt {version}"
