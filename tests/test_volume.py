"""``Volume`` from the client, against a real server: what ``batch_upload().put_file``
takes (a path, or a binary file-like object as Modal's does)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ServerHandle

UPLOAD = """
import io, json, coldsnap

with coldsnap.Volume.ephemeral() as vol:
    with open({path!r}, "rb") as opened, vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"up"), "/up.txt")
        batch.put_file(opened, "/dir/opened.bin")
    entries = {{e.path: e.size for e in vol.listdir("/", recursive=True)}}
    read = [b"".join(vol.read_file(p)).decode() for p in ("/up.txt", "/dir/opened.bin")]
    try:
        with vol.batch_upload(force=True) as batch:
            batch.put_file(io.StringIO("text"), "/text.txt")
        refused = None
    except coldsnap.exception.InvalidError as exc:
        refused = str(exc)
print(json.dumps([entries, read, refused]))
"""


def test_put_file_takes_a_binary_file_like_object(server: ServerHandle, tmp_path: Path
                                                  ) -> None:
    local = tmp_path / "opened.bin"
    local.write_bytes(b"from an open file")
    out = server.python(UPLOAD.format(path=str(local))).stdout.strip().splitlines()[-1]
    entries, read, refused = json.loads(out)
    assert entries["up.txt"] == 2 and entries["dir/opened.bin"] == 17, entries
    assert read == ["up", "from an open file"]
    assert refused == ("batch_upload().put_file(..., '/text.txt'): the file-like object read "
                       "str, not bytes; open it in binary mode (\"rb\") or pass io.BytesIO")
