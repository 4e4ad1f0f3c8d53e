"""Images with a root of their own (``debian_slim``), end to end on a real server and
CRIU: each step in a build container, the host out of sight, snapshots on such a root."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = """
import coldsnap


def download(name, size=1):
    import os
    os.makedirs("/opt/models", exist_ok=True)
    with open(f"/opt/models/{{name}}", "w") as f:
        f.write("w" * size)


image = (coldsnap.Image.debian_slim()
         .apt_install("jq")
         .pip_install("six==1.16.0")
         .uv_pip_install("idna")
         .workdir("/srv")
         .add_local_file({data!r}, "/srv/data.txt")
         .dockerfile_commands("ENV GREETING=hi", "RUN echo $GREETING > greet.txt")
         .run_function(download, args=("tiny",), kwargs={{"size": 5}}))
app = coldsnap.App("on-base", image=image)


@app.function()
def look(paths: list) -> dict:
    import os, subprocess, sys, idna, six
    return {{"python": sys.executable, "six": six.__version__, "cwd": os.getcwd(),
             "idna": idna.__name__, "model": open("/opt/models/tiny").read(),
             "greet": open("greet.txt").read(), "data": open("data.txt").read(),
             "jq": subprocess.run(["jq", "-n", "1+1"], capture_output=True, text=True).stdout,
             "seen": [p for p in paths if os.path.exists(p)],
             "GREETING": os.environ.get("GREETING")}}


@app.function(image=coldsnap.Image.from_host().run_function(download, args=("host",)))
def on_host(path: str) -> list:
    import os
    return [os.path.exists(path), open("/opt/models/host").read()]


@app.cls(enable_memory_snapshot=True)
class Model:
    @coldsnap.build()
    def download(self):
        open("/opt/weights.txt", "w").write("weights v1")

    @coldsnap.enter(snap=True)
    def load(self):
        import six
        self.weights = open("/opt/weights.txt").read() + " six " + six.__version__

    @coldsnap.method()
    def weights_(self) -> str:
        return self.weights
"""
CALL = """
import json, coldsnap
look = coldsnap.Function.from_name("on-base", "look")
print(json.dumps(look.remote({paths!r})))
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture(scope="module")
def deployed(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, Path]:
    """The deploy's output and the app file."""
    directory = tmp_path_factory.mktemp("on-base")
    data = directory / "data.txt"
    data.write_text("from the client")
    app_file = write_app(directory, "app", APP.format(data=str(data)))
    out = server.cli("deploy", str(app_file), timeout=900)
    return out.stdout + out.stderr, app_file


def test_each_step_lands_in_the_image_and_the_host_stays_out_of_sight(
    server: ServerHandle, deployed: tuple[str, Path]
) -> None:
    host_only = [str(Path(__file__).resolve()), "/work", str(server.settings.state_dir)]
    out = server.python(CALL.format(paths=[*host_only, "/etc/debian_version"]))
    seen = json.loads(out.stdout)
    assert seen["python"] == "/usr/bin/python3", seen
    assert (seen["six"], seen["cwd"], seen["greet"], seen["data"], seen["jq"]) == (
        "1.16.0", "/srv", "hi\n", "from the client", "2\n")
    assert seen["GREETING"] == "hi" and seen["idna"] == "idna"  # uv_pip_install's
    assert seen["model"] == "wwwww"  # what run_function wrote
    assert seen["seen"] == ["/etc/debian_version"]  # nothing of the host's, the image's own
    on_host = "import coldsnap; print(coldsnap.Function.from_name('on-base', 'on_host')" \
              ".remote({path!r}))"
    # The control: a from_host() function of the same app does see the host's files.
    assert server.python(on_host.format(path=str(Path(__file__).resolve()))).stdout.strip() \
        == "[True, 'w']"  # and run_function works on from_host() too
    assert not Path("/opt/models/host").exists()  # in the image, not on the host


def test_build_output_and_a_snapshot_on_a_debian_root(
    server: ServerHandle, deployed: tuple[str, Path]
) -> None:
    call = "import coldsnap; print(coldsnap.Cls.from_name('on-base', 'Model')().weights_.remote())"
    first = server.python(call)
    assert first.stdout.strip() == "weights v1 six 1.16.0"
    assert "memory snapshot created in" in first.stderr, first.stderr
    server.cli("apps", "stop", "on-base")  # its containers go; the same version again
    server.cli("deploy", str(deployed[1]), timeout=900)
    again = server.python(call)
    assert again.stdout.strip() == "weights v1 six 1.16.0"
    assert "restored from memory snapshot in" in again.stderr, again.stderr


def test_steps_are_cached_one_by_one(server: ServerHandle, deployed: tuple[str, Path],
                                     tmp_path: Path) -> None:
    output = deployed[0]
    assert "Running apt-get install in a build container" in output or \
        "Using cached step 1 (apt_install)" in output
    app = APP.format(data=str(tmp_path / "data.txt")).replace(
        "RUN echo $GREETING > greet.txt", "RUN echo $GREETING there > greet.txt")
    (tmp_path / "data.txt").write_text("from the client")
    done = server.cli("deploy", str(write_app(tmp_path, "app", app)), timeout=900)
    out = done.stdout + done.stderr
    for step in ("1 (apt_install)", "2 (pip_install)", "3 (uv_pip_install)"):
        assert f"Using cached step {step}" in out, out
    assert "Running run_commands in a build container" in out  # only the changed step ran


def test_a_failing_step_shows_its_output_and_the_step(server: ServerHandle,
                                                      tmp_path: Path) -> None:
    app = ("import coldsnap\n"
           "image = coldsnap.Image.debian_slim().run_commands('echo fine', "
           "'echo broken-step-output >&2; exit 3')\n"
           "app = coldsnap.App('on-base-broken', image=image)\n"
           "@app.function()\ndef f():\n    return 1\n")
    out = server.cli("deploy", str(write_app(tmp_path, "broken", app)), check=False)
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "run_commands failed (exit status 3)" in said, said
    assert "command: echo broken-step-output >&2; exit 3" in said
    assert "broken-step-output" in said


def test_the_none_engine_refuses_an_image_with_a_root_of_its_own(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    none = server_factory(engine="none").start()
    app = ("import coldsnap\n"
           "app = coldsnap.App('on-base-none', image=coldsnap.Image.debian_slim())\n"
           "@app.function()\ndef f():\n    return 1\n")
    out = none.cli("deploy", str(write_app(tmp_path, "app", app)), check=False)
    assert out.returncode != 0
    assert "Image.debian_slim() gives containers a root filesystem of their own, which needs " \
           "the criu engine" in out.stderr, out.stderr
