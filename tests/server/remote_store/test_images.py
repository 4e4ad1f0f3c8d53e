"""With CRIU and a real S3 store (SeaweedFS): two servers with state dirs and image
dirs of their own (two hosts) share built images through ``COLDSNAP_STORE_URL``."""

from __future__ import annotations

import re
from pathlib import Path

from coldsnap.server.remote_store.manifest import Manifest
from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, wait_for, write_app
from tests.server.remote_store.seaweed import Seaweed, new_prefix

# The build writes a random token: a host that built the image itself returns another.
APP = """
import coldsnap

image = coldsnap.Image.from_host().run_commands(
    "head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\\\n' > /shared-image-token")
app = coldsnap.App("shared-image", image=image)


@app.function()
def token() -> str:
    return open("/shared-image-token").read()
"""
CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('shared-image', 'token').remote())\n")
BUILD_CONTAINER = "in a build container"


def host(server_factory: type[ServerHandle], seaweed: Seaweed, prefix: str,
         images: Path) -> ServerHandle:
    return server_factory("criu", {**seaweed.env(prefix), "COLDSNAP_IMAGE_DIR": str(images)}
                          ).start()


def deploy_and_call(server: ServerHandle, directory: Path) -> tuple[str, str]:
    """The deploy's output and the call's answer."""
    deployed = server.cli("deploy", str(write_app(directory, "shared_image", APP)))
    return deployed.stdout + deployed.stderr, server.python(CALL).stdout.strip()


def uploaded(server: ServerHandle, count: int = 1) -> None:
    try:
        wait_for(lambda: server.log().count("uploaded image") >= count, 120,
                 "the image's upload to the store")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{server.log()[-3000:]}") from None


def test_a_host_fetches_the_image_another_built_instead_of_building_it(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    require_criu()
    prefix = new_prefix()
    a = host(server_factory, seaweed, prefix, tmp_path / "a-images")
    output, token = deploy_and_call(a, tmp_path)
    assert BUILD_CONTAINER in output and re.fullmatch(r"[0-9a-f]{16}", token), (output, token)
    uploaded(a)
    [manifest] = [n for n in seaweed.objects(prefix) if n.startswith("images/")]
    assert manifest.endswith(".json"), manifest

    b = host(server_factory, seaweed, prefix, tmp_path / "b-images")
    output, fetched_token = deploy_and_call(b, tmp_path)
    assert fetched_token == token, (output, b.log()[-3000:])  # A's layer, not a build of B's
    assert BUILD_CONTAINER not in output, output
    assert "it was built on another host" in output, output
    assert re.search(r"fetched image [0-9a-f]{12} from s3://\S+: [\d.]+ MB", b.log()), \
        b.log()[-3000:]
    assert list((tmp_path / "b-images").glob("*/image.json")), "published in B's image dir"
    assert "uploaded image" not in b.log()  # the store has it already


def test_a_damaged_image_chunk_makes_the_host_build_it_and_replace_it(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    require_criu()
    prefix = new_prefix()
    a = host(server_factory, seaweed, prefix, tmp_path / "a-images")
    _, token = deploy_and_call(a, tmp_path)
    uploaded(a)
    [name] = [n for n in seaweed.objects(prefix) if n.startswith("images/")]
    manifest = Manifest.from_json(seaweed.get(f"{prefix}/{name}"))
    digest, where = max(manifest.locations.items(), key=lambda item: item[1].length)
    good = seaweed.get(f"{prefix}/{where.pack}")
    end = where.offset + where.length
    seaweed.put(f"{prefix}/{where.pack}", good[:end - 16] + bytes(16) + good[end:])  # bit rot

    b = host(server_factory, seaweed, prefix, tmp_path / "b-images")
    output, own_token = deploy_and_call(b, tmp_path)
    assert own_token != token and BUILD_CONTAINER in output, output
    assert re.search(rf"Fetching image \S+ from s3://\S+ failed: chunk {digest} .*damaged, "
                     r"deleted it there; building it on this host", b.log()), b.log()[-3000:]
    uploaded(b)  # B's build takes the damaged one's place
    replaced = Manifest.from_json(seaweed.get(f"{prefix}/{name}"))
    assert where.pack not in {loc.pack for loc in replaced.locations.values()}, replaced
