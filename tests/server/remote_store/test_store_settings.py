"""`coldsnap serve` refuses store settings that can't work before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldsnap.wire.exits import EXIT_BAD_SETTING


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("COLDSNAP_STORE_URL", "http://minio:9000/snaps",
     "error: COLDSNAP_STORE_URL='http://minio:9000/snaps' is not an S3 URL: use s3://BUCKET "
     "or s3://BUCKET/PREFIX (docs/store.md)"),
    ("COLDSNAP_SNAPSHOT_LAYOUT", "same",
     "error: COLDSNAP_SNAPSHOT_LAYOUT='same' is not one of auto, fixed, random "
     "(docs/store.md)"),
])
def test_a_bad_store_setting_stops_the_server_before_it_starts(
        tmp_path: Path, variable: str, value: str, said: str) -> None:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"), variable: value}
    result = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_SETTING
    assert result.stderr.strip() == said
    assert not (tmp_path / "state").exists()
