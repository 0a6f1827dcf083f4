"""Every field of every stage config dataclass carries a docstring (what `--set` users read)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "llmctl"
CONFIG_MODULES = sorted(SRC.glob("*/config.py"))


def undocumented(path: Path) -> list[str]:
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef):
            continue
        if not any(getattr(d, "id", getattr(d, "attr", None)) == "dataclass" for d in node.decorator_list):
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                is_doc = isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                if not is_doc:
                    missing.append(f"{node.name}.{stmt.target.id}")
    return missing


def test_there_are_config_modules():
    assert CONFIG_MODULES


@pytest.mark.parametrize("path", CONFIG_MODULES, ids=lambda p: p.parent.name)
def test_every_field_is_documented(path: Path):
    assert undocumented(path) == []
