"""Every row of docs/reliability.md names tests that exist: the table can't promise a
fault is handled without a test that shows it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[str]:
    lines = (ROOT / "docs" / "reliability.md").read_text().splitlines()
    return [line for line in lines if line.startswith("| ") and not line.startswith(
        ("| fault ", "| --- "))]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_row_names_a_test_that_exists() -> None:
    rows = _rows()
    assert len(rows) >= 10  # the faults the issue lists, at least
    for row in rows:
        cell = row.rstrip(" |").rsplit(" | ", 1)[-1]
        ids = re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", cell)
        assert ids, f"no test named in: {row}"
        path = None
        for file, name in ids:
            path = ROOT / file if file else path
            assert path is not None and path.exists(), f"{file}: no such test file ({row})"
            assert name in _functions(path), f"{path.name} has no {name} ({row})"
