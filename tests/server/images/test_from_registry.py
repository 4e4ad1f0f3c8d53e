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
                 "host_file": os.path.exists({host_file!r}),
                 "resolv": open("/etc/resolv.conf").read()}}
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
                 # as images built by Docker come: without one (the engine gives the host's)
                 ["umoci", "insert", "--image", image, "--whiteout", "/etc/resolv.conf"],
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
                    "host_file": False, "resolv": Path("/etc/resolv.conf").read_text()}
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


ADD_PYTHON_APP = """
import coldsnap

image = coldsnap.Image.from_registry({ref!r}, add_python="3.11").pip_install("six==1.16.0")
app = coldsnap.App("add-python", image=image)


@app.cls(enable_memory_snapshot=True)
class Probe:
    @coldsnap.enter(snap=True)
    def load(self):
        import sqlite3
        self.db = sqlite3.connect(":memory:")
        self.db.execute("create table t (x)")
        self.db.execute("insert into t values (42)")

    @coldsnap.method()
    def look(self) -> dict:
        import ctypes, os, ssl, subprocess, sys, six
        child = subprocess.run([sys.executable, "-c", "print('child')"], capture_output=True,
                               text=True).stdout.strip()
        return {{"version": sys.version_info[:2], "python": sys.executable, "six": six.__version__,
                 "ssl": ssl.OPENSSL_VERSION.split()[0],
                 "sqlite": self.db.execute("select x from t").fetchone()[0],
                 "ctypes": ctypes.CDLL("libc.so.6").getpid() == os.getpid(), "child": child,
                 "own_libc": os.path.exists("/lib/x86_64-linux-gnu/libc.so.6")}}
"""
ADD_PYTHON_CALL = CALL.replace("from-registry", "add-python")


def test_add_python_runs_functions_and_snapshots_in_an_image_without_python(
    server: ServerHandle, tmp_path: Path, registry: LocalRegistry
) -> None:
    # No /etc/resolv.conf in the image: the engine gives every container on a root of
    # its own the host's, so pip's step resolves names.
    busybox = ImageContent(layers=[{"/app/x.txt": ("x", 0o644)}], env={"PATH": "/bin"})
    push_image(registry, "busybox-addpy", "1", busybox, tmp_path / "image")
    source = ADD_PYTHON_APP.format(ref=f"{registry.address}/busybox-addpy:1")
    app = write_app(tmp_path, "app", source)
    deployed = server.cli("deploy", str(app), timeout=900)
    assert "functions run in the added Python 3.11." in deployed.stderr, deployed.stderr
    first = server.python(ADD_PYTHON_CALL)
    seen = json.loads(first.stdout)
    assert seen == {"version": [3, 11], "python": "/opt/coldsnap/python3.11/bin/python3.11",
                    "six": "1.16.0", "ssl": "OpenSSL", "sqlite": 42, "ctypes": True,
                    "child": "child", "own_libc": False}
    assert "memory snapshot created in" in first.stderr, first.stderr
    server.cli("apps", "stop", "add-python")
    server.cli("deploy", str(app))
    again = server.python(ADD_PYTHON_CALL)
    assert json.loads(again.stdout) == seen
    assert "restored from memory snapshot in" in again.stderr, again.stderr


def test_add_python_replaces_a_python_too_old_for_coldsnap(
    server: ServerHandle, tmp_path: Path, registry: LocalRegistry
) -> None:
    old = ImageContent(layers=[{"/usr/local/lib/python3.9/os.py": ("# landmark\n", 0o644),
                                "/usr/local/bin/python3.9": ("#!/bin/sh\nexit 1\n", 0o755)}],
                       env={"PATH": "/usr/local/bin:/bin"},
                       symlinks={"/usr/local/bin/python3": "python3.9"})
    push_image(registry, "python39", "1", old, tmp_path / "image")
    ref = f"{registry.address}/python39:1"
    source = ("import coldsnap\n"
              f"image = coldsnap.Image.from_registry({ref!r}, add_python='3.13')\n"
              "app = coldsnap.App('add-python-old', image=image)\n"
              "@app.function()\ndef f():\n"
              "    import shutil, sys\n"
              "    return [list(sys.version_info[:2]), shutil.which('python3'),\n"
              "            shutil.which('pip')]\n")
    deployed = server.cli("deploy", str(write_app(tmp_path, "old", source)), timeout=900)
    assert ("The image has Python 3.9 at /usr/local/bin/python3; functions run in the added "
            "Python 3.13.") in deployed.stderr, deployed.stderr
    out = server.python("import coldsnap\n"
                        "print(coldsnap.Function.from_name('add-python-old', 'f').remote())\n")
    assert out.stdout.strip() == ("[[3, 13], '/opt/coldsnap/python3.13/bin/python3', "
                                  "'/opt/coldsnap/python3.13/bin/pip']"), out.stderr
