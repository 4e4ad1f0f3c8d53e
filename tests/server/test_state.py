"""StateDB: a deployed version is stored and read back typed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from coldsnap.server.images.built import BuiltImage
from coldsnap.server.state import StateDB, StoredVersion
from coldsnap.wire.description import AppDescription

DESCRIPTION = {
    "app": "a", "image": {"hash": "h", "spec": {"layers": [{"op": "from_host"}]}},
    "functions": {"f": {"kind": "function", "options": {"retries": 2}}},
    "entrypoints": [], "module": "a",
}
BUILT = BuiltImage("h", "/venv/bin/python", (Path("/layers/1"),), {"MODE": "x"})


def test_a_version_round_trips_with_its_built_images(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    stored = StoredVersion("a", "v1", "a.py", b"src", AppDescription.from_dict(DESCRIPTION),
                           {"f": BUILT})
    db.put_version(stored)
    assert db.version("a", "v1") == stored
    row = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT description FROM versions").fetchone()
    assert json.loads(row[0]) == stored.description.to_dict()  # its own form, nothing added


def test_a_version_stored_by_an_older_server_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)  # the table as it was, built images inside the description
    old.execute("CREATE TABLE versions (app TEXT NOT NULL, version TEXT NOT NULL, filename "
                "TEXT NOT NULL, source BLOB NOT NULL, description TEXT NOT NULL, created_at "
                "REAL NOT NULL, PRIMARY KEY (app, version))")
    # retries=99 broke no rule then: a stored version is not checked again when loaded.
    data = {**DESCRIPTION, "functions": {"f": {"kind": "function", "options": {"retries": 99}}},
            "built_images": {"f": BUILT.to_record()}}
    old.execute("INSERT INTO versions VALUES ('a', 'v0', 'a.py', x'00', ?, 0)",
                (json.dumps(data),))
    old.commit()
    old.close()
    stored = StateDB(path).version("a", "v0")
    assert stored is not None
    assert stored.built_images == {"f": BUILT}
    assert stored.description.functions["f"].options.retries == 99
