"""Image builds on a fleet whose hosts don't share the control plane's image dir: with
COLDSNAP_FLEET_SHIP_BUILDS=always the simulated hosts of this machine ship each build
container's output to the control plane as another machine's agent would."""

from __future__ import annotations

import re
from pathlib import Path

from coldsnap.client import Client
from tests.conftest import ServerHandle
from tests.end_to_end import write_app
from tests.fleet.conftest import RayCluster, fleet_server

# The build writes a random token: the call returns it only if the layer arrived.
TOKEN = "head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\\\n' > /built-token"
APP = f"""
import coldsnap

# The second step reads the first's layer: shipped before the second container starts.
image = (coldsnap.Image.from_host().run_commands("{TOKEN}")
         .run_commands("cp /built-token /built-token-copy"))
app = coldsnap.App("shipped-build", image=image)


@app.function()
def token() -> str:
    return open("/built-token").read() + " " + open("/built-token-copy").read()


@app.cls()
class Built:
    @coldsnap.build()  # its output is shipped like a step's
    def make(self) -> None:
        open("/built-by-method", "w").write(open("/built-token").read() + "-method")

    @coldsnap.method()
    def read(self) -> str:
        return open("/built-by-method").read()
"""
FAILING = """
import coldsnap

image = coldsnap.Image.from_host().run_commands(
    "echo step-output-on-the-agent; echo to-stderr >&2; exit 3")
app = coldsnap.App("failing-build", image=image)


@app.function()
def never() -> None:
    pass
"""
SHIPPED = re.compile(r"shipped build output of container (cs-\w+) from host (\S+): "
                     r"(\d+) bytes in [\d.]+ s, to (\S+)")
CALL = "import coldsnap\nprint(coldsnap.Function.from_name('shipped-build', 'token').remote())\n"
METHOD = ("import coldsnap\n"
          "print(coldsnap.Cls.from_name('shipped-build', 'Built')().read.remote())\n")


def hosts(server: ServerHandle) -> list[str]:
    client = Client(server.settings)
    try:
        return [h["host"] for h in client.ping()["hosts"]]
    finally:
        client.close()


def staged(server: ServerHandle) -> list[Path]:
    """What the agents hold of build containers' output (build_output.py's staging)."""
    return [p for d in (server.settings.state_dir / "hosts").glob("*/build-output")
            for p in d.iterdir()]


def test_a_build_on_an_agent_ships_its_layer_and_a_failed_one_reports_its_output(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, tmp_path: Path) -> None:
    images = tmp_path / "images"
    server = fleet_server(server_factory, ray_cluster, {
        "COLDSNAP_FLEET_SHIP_BUILDS": "always", "COLDSNAP_IMAGE_DIR": str(images)})
    deployed = server.cli("deploy", str(write_app(tmp_path, "shipped_build", APP)))
    assert "in a build container" in deployed.stdout + deployed.stderr, deployed

    first, second, method = SHIPPED.findall(server.log())
    for _, host, size, keep in (first, second, method):
        assert host in hosts(server), (host, hosts(server))
        assert Path(keep).is_relative_to(images) and int(size) > 0, (first, second)
    token = (Path(first[3]) / "built-token").read_text()
    assert re.fullmatch(r"[0-9a-f]{16}", token), token
    assert (Path(second[3]) / "built-token-copy").read_text() == token
    assert staged(server) == [], "the agent's copy is removed once shipped"
    assert server.python(CALL).stdout.split() == [token, token], server.log()[-3000:]
    assert (Path(method[3]) / "built-by-method").read_text() == token + "-method"
    assert server.python(METHOD).stdout.split() == [token + "-method"], server.log()[-3000:]

    failed = server.cli("deploy", str(write_app(tmp_path, "failing_build", FAILING)),
                        check=False)
    words = failed.stdout + failed.stderr
    assert failed.returncode != 0, words
    assert "run_commands failed (exit status 3) while building the image" in words, words
    assert "step-output-on-the-agent" in words and "to-stderr" in words, words
    assert "BuildOutputLost" not in words and "never left host" not in words, words
    assert len(SHIPPED.findall(server.log())) == 3, "a failed step's output is not shipped"
    assert staged(server) == [], "nor kept on the agent"


def test_hosts_of_the_control_planes_machine_ship_nothing_by_default(
        server_factory: type[ServerHandle], ray_cluster: RayCluster, tmp_path: Path) -> None:
    server = fleet_server(server_factory, ray_cluster,
                          {"COLDSNAP_IMAGE_DIR": str(tmp_path / "images")})
    server.cli("deploy", str(write_app(tmp_path, "shipped_build", APP)))
    first, copy = server.python(CALL).stdout.split()
    assert re.fullmatch(r"[0-9a-f]{16}", first) and copy == first, (first, copy)
    assert "shipped build output" not in server.log(), server.log()[-3000:]
