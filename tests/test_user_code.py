"""Importing an app file (coldsnap/user_code.py) runs the file's bytes of now."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from coldsnap import user_code


def test_a_rewrite_of_the_same_size_and_mtime_runs_the_new_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a user's Python has it
    # A __pycache__ entry matches a file by mtime (whole seconds) and size: two deploys
    # within a second of a same-size edit once ran the old code.
    app_file = tmp_path / "stepped_app.py"
    app_file.write_text("WORD = 'one'\n")
    stamp = app_file.stat().st_mtime_ns
    try:
        assert user_code.import_app_file(app_file).WORD == "one"
        app_file.write_text("WORD = 'two'\n")
        os.utime(app_file, ns=(stamp, stamp))
        assert user_code.import_app_file(app_file).WORD == "two"
    finally:
        sys.modules.pop("stepped_app", None)
        sys.path.remove(str(tmp_path.resolve()))
    assert not (tmp_path / "__pycache__").exists()  # nothing written beside the user's file
