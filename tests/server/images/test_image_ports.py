"""Image steps as apps ported from Modal write them, end to end on a real server and
CRIU: requirement files next to the app (read on the client only, never again in
the container that imports the app to run it), and a Dockerfile ``ENV PATH=...:$PATH``
that keeps the image's PATH in build steps and in containers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = r"""
import coldsnap

image = (coldsnap.Image.debian_slim()
         .pip_install_from_requirements("requirements.txt")
         .pip_install_from_pyproject("pyproject.toml", optional_dependencies=["extra"])
         .add_local_file("data.txt", "/srv/")
         .add_local_dir("assets", "/srv/assets", copy=True, ignore=["*.log"])
         .dockerfile_commands(
             "LABEL purpose=test",
             "ENV PATH=/opt/bin:$PATH",
             "RUN mkdir -p /opt/bin && printf '#!/bin/sh\\necho from-opt-bin\\n' > /opt/bin/mytool"
             " && chmod +x /opt/bin/mytool",
             "RUN echo $PATH > /srv/path-in-run && mytool > /srv/tool-in-run"))
app = coldsnap.App("image-ports", image=image)


@app.function()
def look() -> dict:
    import os, shutil, subprocess, idna, six
    return {"six": six.__version__, "idna": idna.__name__, "PATH": os.environ["PATH"],
            "ls": shutil.which("ls"),
            "tool": subprocess.run(["mytool"], capture_output=True, text=True).stdout,
            "path_in_run": open("/srv/path-in-run").read().strip(),
            "tool_in_run": open("/srv/tool-in-run").read(),
            "data": open("/srv/data.txt").read(), "assets": sorted(os.listdir("/srv/assets"))}


@app.function(image=coldsnap.Image.from_host().dockerfile_commands("ENV PATH=/opt/hostbin:$PATH"))
def host_path() -> str:
    import os
    return os.environ["PATH"]
"""
CALL = ("import json, coldsnap; "
        "print(json.dumps(coldsnap.Function.from_name('image-ports', {name!r}).remote()))")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture(scope="module")
def deployed(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The app deployed from its own directory, as `cd app && coldsnap deploy app.py`."""
    directory = tmp_path_factory.mktemp("image-ports")
    (directory / "requirements.txt").write_text("# pinned\nsix==1.16.0\n")
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "ported"\nversion = "0"\ndependencies = []\n'
        '[project.optional-dependencies]\nextra = ["idna"]\n')
    (directory / "data.txt").write_text("next to the app")
    (directory / "assets").mkdir()
    (directory / "assets" / "logo.svg").write_text("<svg/>")
    (directory / "assets" / "debug.log").write_text("left out")
    app_file = write_app(directory, "app", APP)
    done = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "deploy", str(app_file)],
                          env=server.env, cwd=directory, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr + server.log()[-4000:]
    return done.stdout + done.stderr


def test_requirement_files_install_on_the_client_and_the_container_boots(
    server: ServerHandle, deployed: str
) -> None:
    # The container imports app.py again, in /srv, where requirements.txt is not.
    seen = json.loads(server.python(CALL.format(name="look")).stdout)
    assert (seen["six"], seen["idna"]) == ("1.16.0", "idna")
    assert seen["data"] == "next to the app"  # add_local_file(..., "/srv/") kept its name
    assert seen["assets"] == ["logo.svg"]  # ignore=["*.log"]


def test_dockerfile_env_path_keeps_the_image_path(server: ServerHandle, deployed: str) -> None:
    seen = json.loads(server.python(CALL.format(name="look")).stdout)
    path_in_run = seen["path_in_run"].split(":")
    assert path_in_run[0] == "/opt/bin" and "/usr/bin" in path_in_run, seen["path_in_run"]
    assert seen["tool_in_run"] == "from-opt-bin\n"
    assert seen["PATH"] == seen["path_in_run"]  # the container's, as the RUN had it
    assert seen["ls"] in ("/usr/bin/ls", "/bin/ls") and seen["tool"] == "from-opt-bin\n"
    host = json.loads(server.python(CALL.format(name="host_path")).stdout).split(":")
    assert host[0] == "/opt/hostbin" and "/usr/bin" in host, host  # from_host() too


def test_force_build_builds_the_step_again(server: ServerHandle, tmp_path: Path) -> None:
    app = ("import coldsnap\n"
           "image = coldsnap.Image.debian_slim().run_commands("
           "'date +%s%N > /built-at', force_build=True)\n"
           "app = coldsnap.App('image-ports-forced', image=image)\n"
           "@app.function()\ndef built_at() -> str:\n    return open('/built-at').read()\n")
    app_file = write_app(tmp_path, "forced", app)
    call = CALL.replace("image-ports", "image-ports-forced").format(name="built_at")
    stamps = []
    for _ in range(2):
        out = server.cli("deploy", str(app_file), timeout=900)
        assert "Running run_commands in a build container" in out.stdout + out.stderr
        stamps.append(json.loads(server.python(call).stdout))
    assert stamps[0] != stamps[1]
