"""``Image.from_registry`` end to end: an image the test builds from a Debian root and
pushes to a local registry runs functions, with its env, workdir and files, and
snapshots on a real server and CRIU."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.server.images.debian import ensure_debian_base
from coldsnap.settings import Settings
from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app
from tests.server.images.registry import ImageContent, LocalRegistry, push_image

APP = """
import coldsnap

image = coldsnap.Image.from_registry({ref!r}).pip_install("six==1.16.0")
app = coldsnap.App("from-registry", image=image)


@app.cls(enable_memory_snapshot=True)
class Probe:
    @coldsnap.enter(snap=True)
    def load(self):
        self.hello = open("hello.txt").read()

    @coldsnap.method()
    def look(self) -> dict:
        import os, sys, six
        return {{"python": sys.executable, "cwd": os.getcwd(), "hello": self.hello,
                 "GREETING": os.environ.get("GREETING"), "six": six.__version__,
                 "host_file": os.path.exists({host_file!r})}}
"""
CALL = ("import json, coldsnap\n"
        "print(json.dumps(coldsnap.Cls.from_name('from-registry', 'Probe')().look.remote()))\n")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture(scope="module")
def python_image(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Debian root with Python plus /app/hello.txt, env GREETING and workdir /app,
    pushed as ``pydebian:1``; its reference."""
    base = ensure_debian_base("3.11", Settings.from_env().base_dir, lambda line: None)
    work = tmp_path_factory.mktemp("pydebian")
    (work / "app-layer" / "app").mkdir(parents=True)
    (work / "app-layer" / "app" / "hello.txt").write_text("hello from the registry\n")
    image = f"{work / 'layout'}:1"
    for argv in (["umoci", "init", "--layout", str(work / "layout")],
                 ["umoci", "new", "--image", image],
                 ["umoci", "insert", "--image", image, str(base.rootfs), "/"],
                 ["umoci", "insert", "--image", image, str(work / "app-layer"), "/"],
                 ["umoci", "config", "--image", image, "--config.workingdir", "/app",
                  "--config.env", "GREETING=hello",
                  "--config.env", "PATH=/usr/local/bin:/usr/bin:/bin"],
                 ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{image}",
                  f"docker://{registry.address}/pydebian:1"]):
        subprocess.run(argv, check=True, capture_output=True)
    return f"{registry.address}/pydebian:1"


def test_a_registry_image_runs_functions_and_snapshots(
    server: ServerHandle, python_image: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path, "app", APP.format(ref=python_image, host_file=__file__))
    deployed = server.cli("deploy", str(app), timeout=900)
    assert "pydebian: pulling" in deployed.stderr or "cached" in deployed.stderr, deployed.stderr
    first = server.python(CALL)
    seen = json.loads(first.stdout)
    assert seen == {"python": "/usr/bin/python3", "cwd": "/app",
                    "hello": "hello from the registry\n", "GREETING": "hello", "six": "1.16.0",
                    "host_file": False}
    assert "memory snapshot created in" in first.stderr, first.stderr
    server.cli("apps", "stop", "from-registry")
    server.cli("deploy", str(app))
    again = server.python(CALL)
    assert json.loads(again.stdout) == seen
    assert "restored from memory snapshot in" in again.stderr, again.stderr


def test_an_image_without_python_is_refused_in_words(
    server: ServerHandle, tmp_path: Path, registry: LocalRegistry
) -> None:
    no_python = ImageContent(layers=[{"/app/x.txt": ("x", 0o644)}], env={"PATH": "/bin"})
    push_image(registry, "nopython", "1", no_python, tmp_path / "image")
    source = ("import coldsnap\n"
              f"image = coldsnap.Image.from_registry('{registry.address}/nopython:1')\n"
              "app = coldsnap.App('from-registry-tiny', image=image)\n"
              "@app.function()\ndef f():\n    return 1\n")
    out = server.cli("deploy", str(write_app(tmp_path, "tiny", source)), check=False)
    assert out.returncode != 0
    assert "has no python3 or python in the directories of its PATH, so coldsnap can't run " \
           "functions in it" in out.stderr, out.stderr
