"""Shared fixtures: a tiny two-stage pipeline built from the artifact API, and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"


def llmctl(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real CLI in a subprocess (exit codes and stderr exactly as a user sees them)."""
    # a wide terminal: rich would wrap a long tmp path (pytest -n adds popen-gwN/) inside a message
    full_env = {**os.environ, "LLMCTL_QUIET": "1", "COLUMNS": "1000", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "llmctl.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_cli():
    return llmctl
