"""Images on a fleet with a shared store: a host agent that lacks the files of an
image (a host that does not share the control plane's image dir) fetches them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ServerHandle
from tests.end_to_end import wait_for, write_app
from tests.fleet.conftest import RayCluster, fleet_server
from tests.server.remote_store.test_images import APP, call


def test_an_agent_fetches_an_image_whose_files_its_host_lacks(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, seaweed: Any,
        tmp_path: Path) -> None:
    from coldsnap.bench.seaweed import new_prefix

    images = tmp_path / "images"
    server = fleet_server(server_factory, ray_cluster,
                          {**seaweed.env(new_prefix()), "COLDSNAP_IMAGE_DIR": str(images)})
    server.cli("deploy", str(write_app(tmp_path, "shared_image", APP)))
    [token] = call(server)
    wait_for(lambda: "uploaded image" in server.log(), 120, "the image's upload")
    [marker] = images.glob("*/image.json")
    assert "fetched_from" not in json.loads(marker.read_text())

    # The hosts lose the image's files (as a host that never had them): the next
    # container's agent fetches them, at the same path, and the call sees the token.
    server.cli("apps", "drain", "shared-image")
    gone = marker.parent.rename(images / ".gone")
    assert call(server) == [token], server.log()[-3000:]
    assert "fetched_from" in json.loads(marker.read_text()), "fetched by the agent"
    assert sorted(p.name for p in marker.parent.iterdir()) == \
        sorted(p.name for p in gone.iterdir()), "the same trees"


def test_an_agent_fetches_the_debian_base_its_host_lacks(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, seaweed: Any,
        tmp_path: Path) -> None:
    """The image's root lies outside its dir, in the host-wide base cache: a host that
    lacks it gets it from the store too (remote_store/bases.py), not a failed start."""
    import subprocess

    from coldsnap.bench.seaweed import new_prefix
    from tests.server.remote_store.test_images import SLIM

    bases = tmp_path / "bases"
    bases.mkdir()
    for built in Path("/var/cache/coldsnap/bases").glob("debian-bookworm-*/base.json"):
        subprocess.run(["cp", "-a", str(built.parent), str(bases)], check=True)  # no debootstrap
    server = fleet_server(server_factory, ray_cluster,
                          {**seaweed.env(new_prefix()), "COLDSNAP_BASE_DIR": str(bases)})
    server.cli("deploy", str(write_app(tmp_path, "shared_image", APP + SLIM)), timeout=600)
    [_, token] = call(server, APP + SLIM)
    wait_for(lambda: server.log().count("uploaded image") >= 2, 180, "the images' upload")
    assert "uploaded the image root" in server.log()

    server.cli("apps", "drain", "shared-image")
    [root] = [p for p in bases.iterdir() if p.name.startswith("debian-")]
    root.rename(bases / ".gone")
    assert call(server, APP + SLIM)[1] == token, server.log()[-3000:]
    # Fetched into its place (the agent's log says so), not built anew: a build
    # records its own time.
    assert (root / "base.json").read_text() == (bases / ".gone" / "base.json").read_text()
