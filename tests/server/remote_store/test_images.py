"""With CRIU and a real S3 store (SeaweedFS): two servers with state dirs and image
dirs of their own (two hosts) share built images through ``COLDSNAP_STORE_URL``."""

from __future__ import annotations

import re
from pathlib import Path

from coldsnap.server.remote_store.manifest import Manifest
from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, wait_for, write_app
from tests.server.remote_store.seaweed import Seaweed, free_port, new_prefix

# The builds write a random token: a host that built an image itself returns another.
TOKEN = "head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\\\n' > /shared-image-token"
APP = f"""
import coldsnap

image = coldsnap.Image.from_host().run_commands("{TOKEN}")
app = coldsnap.App("shared-image", image=image)


@app.function()
def token() -> str:
    return open("/shared-image-token").read()
"""
# A step on a root of its own: its record names the base and the runtime's layer.
SLIM = f"""

@app.function(image=coldsnap.Image.debian_slim().run_commands("{TOKEN}"))
def slim_token() -> str:
    return open("/shared-image-token").read()
"""
CALL = ("import coldsnap\n"
        "for name in {names!r}:\n"
        "    print(coldsnap.Function.from_name('shared-image', name).remote())\n")
BUILD_CONTAINER = "in a build container"


def host(server_factory: type[ServerHandle], seaweed: Seaweed, prefix: str,
         images: Path) -> ServerHandle:
    return server_factory("criu", {**seaweed.env(prefix), "COLDSNAP_IMAGE_DIR": str(images)}
                          ).start()


def deploy_and_call(server: ServerHandle, directory: Path, app: str = APP
                    ) -> tuple[str, list[str]]:
    """The deploy's output and the calls' answers (the same app file on every host)."""
    deployed = server.cli("deploy", str(write_app(directory, "shared_image", app)))
    return deployed.stdout + deployed.stderr, call(server, app)


def call(server: ServerHandle, app: str = APP) -> list[str]:
    names = ["token", "slim_token"] if "slim_token" in app else ["token"]
    return server.python(CALL.format(names=names)).stdout.split()


def logged(server: ServerHandle, line: str, count: int = 1) -> None:
    try:
        wait_for(lambda: server.log().count(line) >= count, 120, repr(line))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{server.log()[-3000:]}") from None


def test_a_host_fetches_the_images_another_built_and_a_third_serves_the_app_unasked(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    require_criu()
    prefix = new_prefix()
    a = host(server_factory, seaweed, prefix, tmp_path / "a-images")
    output, tokens = deploy_and_call(a, tmp_path, APP + SLIM)
    assert output.count(BUILD_CONTAINER) == 2, output
    assert len(tokens) == 2 and all(re.fullmatch(r"[0-9a-f]{16}", t) for t in tokens), tokens
    logged(a, "uploaded image", 2)
    manifests = [n for n in seaweed.objects(prefix) if n.startswith("images/")]
    assert len(manifests) == 2 and all(n.endswith(".json") for n in manifests), manifests

    b = host(server_factory, seaweed, prefix, tmp_path / "b-images")
    output, fetched = deploy_and_call(b, tmp_path, APP + SLIM)
    assert fetched == tokens, (output, b.log()[-3000:])  # A's layers, not builds of B's
    assert BUILD_CONTAINER not in output, output
    assert output.count("it was built on another host") == 2, output
    assert len(re.findall(r"fetched image [0-9a-f]{12} from s3://\S+: [\d.]+ MB",
                          b.log())) == 2, b.log()[-3000:]
    assert len(list((tmp_path / "b-images").glob("*/image.json"))) == 2
    assert "uploaded image" not in b.log()  # the store has them already

    logged(a, "stored the source of app 'shared-image'")
    c = host(server_factory, seaweed, prefix, tmp_path / "c-images")  # never deployed to
    assert call(c, APP + SLIM) == tokens, c.log()[-3000:]
    assert "was deployed on another host: deploying its version" in c.log(), c.log()[-3000:]
    assert BUILD_CONTAINER not in c.log()


def test_a_damaged_image_chunk_makes_the_host_build_it_and_replace_it(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    require_criu()
    prefix = new_prefix()
    a = host(server_factory, seaweed, prefix, tmp_path / "a-images")
    _, tokens = deploy_and_call(a, tmp_path)
    logged(a, "uploaded image")
    [name] = [n for n in seaweed.objects(prefix) if n.startswith("images/")]
    manifest = Manifest.from_json(seaweed.get(f"{prefix}/{name}"))
    digest, where = max(manifest.locations.items(), key=lambda item: item[1].length)
    good = seaweed.get(f"{prefix}/{where.pack}")
    end = where.offset + where.length
    seaweed.put(f"{prefix}/{where.pack}", good[:end - 16] + bytes(16) + good[end:])  # bit rot

    b = host(server_factory, seaweed, prefix, tmp_path / "b-images")
    output, own = deploy_and_call(b, tmp_path)
    assert own != tokens and BUILD_CONTAINER in output, output
    assert re.search(rf"Fetching image \S+ from s3://\S+ failed: chunk {digest} .*damaged, "
                     r"deleted it there; building it on this host", b.log()), b.log()[-3000:]
    logged(b, "uploaded image")  # B's build takes the damaged one's place
    replaced = Manifest.from_json(seaweed.get(f"{prefix}/{name}"))
    assert where.pack not in {loc.pack for loc in replaced.locations.values()}, replaced


def test_with_the_store_down_a_host_builds_its_images_and_uploads_them_later(
        server_factory: type[ServerHandle], tmp_path: Path) -> None:
    require_criu()
    store = Seaweed(s3_port=free_port())  # not started yet: the store is down
    try:
        prefix = new_prefix()
        a = host(server_factory, store, prefix, tmp_path / "a-images")
        output, tokens = deploy_and_call(a, tmp_path)
        assert BUILD_CONTAINER in output and len(tokens) == 1, output
        assert re.search(r"Fetching image \S+ from s3://\S+ failed: .*; building it on this "
                         r"host", a.log()), a.log()[-3000:]
        logged(a, "upload of image")
        assert re.search(r"upload of image \S+ to s3://\S+ failed \(try 1\), retrying in 2 s",
                         a.log()), a.log()[-3000:]
        store.start()
        logged(a, "uploaded image")  # a later try finds the store up
        assert [n for n in store.objects(prefix) if n.startswith("images/")]
    finally:
        store.cleanup()
