"""The socket API's op names: one constant each, a handler each, a row in docs/server.md."""

from __future__ import annotations

import re
from pathlib import Path

from coldsnap.server.api import CONTAINER_OPS, HANDLERS
from coldsnap.wire import ops

SERVER_MD = Path(__file__).resolve().parents[2] / "docs" / "server.md"
OPS = {value for name, value in vars(ops).items()
       if name.isupper() and isinstance(value, str) and name not in ("OP", "TOKEN")}


def test_every_op_has_a_handler_and_every_handler_an_op() -> None:
    assert set(HANDLERS) == OPS
    assert CONTAINER_OPS <= OPS


def test_docs_server_md_has_a_row_for_every_op() -> None:
    section = SERVER_MD.read_text().split("## Wire format\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (`\w+`(?: / `\w+`)*) \|", section, re.MULTILINE)
    documented = {op for row in rows for op in re.findall(r"`(\w+)`", row)}
    assert documented == OPS
