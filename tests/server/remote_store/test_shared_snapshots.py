"""With CRIU and a real S3 store (SeaweedFS): two servers with state dirs of their own
(two hosts) share snapshots through ``COLDSNAP_STORE_URL``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, wait_for, write_app
from tests.server.remote_store.seaweed import Seaweed, new_prefix

APP = """
import coldsnap

app = coldsnap.App("shared-store")


@app.function(enable_memory_snapshot=True)
def answer(x: int) -> int:
    return x + {offset}
"""
CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('shared-store', 'answer').remote(1))\n")


def deploy_and_call(server: ServerHandle, directory: Path, offset: int = 41) -> str:
    """Deploy the app (its path is part of its version: the same one on every host), call."""
    server.cli("deploy", str(write_app(directory, "shared_store", APP.format(offset=offset))))
    return server.python(CALL).stdout.strip()


def hosts_env(seaweed: Seaweed, prefix: str, tmp_path: Path) -> dict[str, str]:
    """Servers ("hosts") sharing the store at ``prefix``. Their images live at one path,
    as on hosts of a fleet that share a layout (/var/lib/coldsnap-images): a snapshot
    holds the paths of its image's files, and they are part of its key."""
    return {**seaweed.env(prefix), "COLDSNAP_IMAGE_DIR": str(tmp_path / "images")}


def boots(server: ServerHandle) -> list[dict[str, Any]]:
    return list(stats(server, "shared-store")["boots"])


def uploaded(server: ServerHandle, count: int = 1) -> None:
    wait_for(lambda: server.log().count("uploaded memory snapshot") >= count, 180,
             "the snapshot's upload to the store")


def test_a_host_restores_the_snapshot_another_made_and_a_salted_one_makes_its_own(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    require_criu()
    env = hosts_env(seaweed, prefix := new_prefix(), tmp_path)
    a = server_factory("criu", env).start()
    assert deploy_and_call(a, tmp_path) == "42"
    assert [b["kind"] for b in boots(a)] == ["snapshot-created"]
    uploaded(a)
    objects = seaweed.objects(prefix)
    manifests = [name for name in objects if name.startswith("snapshots/")]
    assert len(manifests) == 1 and any(n.startswith("chunks/") for n in objects), objects

    b = server_factory("criu", env).start()  # another host: an empty state dir
    assert deploy_and_call(b, tmp_path) == "42"
    [boot] = boots(b)
    assert boot["kind"] == "restored", (boot, b.log()[-3000:])
    assert boot["timings"]["fetch_bytes"] > 0 and boot["timings"]["fetch_s"] > 0, boot
    assert re.search(r"fetched memory snapshot \S+ from s3://\S+: [\d.]+ MB in \d+ ms", b.log())
    [row] = json.loads(b.cli("snapshots", "ls", "--json").stdout)
    assert row["status"] == "ready" and manifests[0].endswith(f"/{row['key']}.json")

    c = server_factory("criu", {**env, "COLDSNAP_HOST_KEY_SALT": "another-cpu"}).start()
    assert deploy_and_call(c, tmp_path) == "42"
    assert [b["kind"] for b in boots(c)] == ["snapshot-created"]
    assert "fetched memory snapshot" not in c.log()
    uploaded(c)
    manifests = [n for n in seaweed.objects(prefix) if n.startswith("snapshots/")]
    assert len({Path(n).parent.name for n in manifests}) == 2, manifests  # two host keys
