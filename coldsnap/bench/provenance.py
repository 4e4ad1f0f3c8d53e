"""What a benchmark's figures came from, for its JSON: the checkout's git commit (and
whether it had uncommitted changes) and the date, in UTC."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def provenance(repo: Path) -> dict[str, Any]:
    """``{"git_commit": ..., "git_dirty": ..., "date": ...}``; the git fields are None
    where ``repo`` is no git checkout (an installed package) or git is missing."""
    commit = _git(repo, "rev-parse", "HEAD")
    changes = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or None,
            "git_dirty": None if commit is None or changes is None else bool(changes),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
