"""Checks that tell whether this host can take and restore snapshots."""

from __future__ import annotations

import os
import subprocess

from coldsnap.settings import Settings


def criu_usable(settings: Settings) -> bool:
    """True when the CRIU binary exists, we are root, and `criu check` passes."""
    if os.geteuid() != 0 or not settings.criu_path.exists():
        return False
    try:
        result = subprocess.run(
            [str(settings.criu_path), "check"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
