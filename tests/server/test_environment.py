"""server/environment.py: a snapshot key changes when the interpreter's packages do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coldsnap.server.environment import environment_fingerprint, search_path


def _venv(tmp_path: Path) -> tuple[str, Path]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True, timeout=60)
    python = str(tmp_path / "venv" / "bin" / "python")
    site = next(Path(p) for p in search_path(python) if p.endswith("site-packages"))
    return python, site


def test_installing_or_upgrading_a_package_changes_the_fingerprint(tmp_path: Path) -> None:
    python, site = _venv(tmp_path)
    empty = environment_fingerprint(python)
    assert environment_fingerprint(python) == empty  # nothing changed: the same key
    (site / "probe-1.0.dist-info").mkdir()
    installed = environment_fingerprint(python)
    (site / "probe-1.0.dist-info").rename(site / "probe-2.0.dist-info")
    upgraded = environment_fingerprint(python)
    assert len({empty, installed, upgraded}) == 3


def test_the_servers_own_interpreter_answers_without_a_subprocess() -> None:
    assert search_path(sys.executable) == tuple(sys.path)
    assert len(environment_fingerprint(sys.executable)) == 8
