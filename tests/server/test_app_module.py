"""The app's own module on both sides: a caller that imported the app file gets the
app's classes and exceptions as its own (``except MyError``, ``isinstance``), and the
app's relative paths resolve against the deploying client's directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

IDENTITY = """
import dataclasses

import coldsnap

app = coldsnap.App("test-identity")


class MyError(Exception):
    pass


@dataclasses.dataclass
class Point:
    x: int


@app.function()
def boom(x):
    raise MyError(f"bad {x}")


@app.function()
def make(x):
    return Point(x)


@app.function()
def is_point(p):
    return isinstance(p, Point)


@app.local_entrypoint()
def main():
    try:
        boom.remote(1)
    except MyError as exc:
        print("caught:", exc)
    point = make.remote(2)
    print("result is ours:", isinstance(point, Point), point == Point(2))
    print("argument is theirs:", is_point.remote(Point(5)))
"""


def test_run_gets_the_apps_classes_and_exceptions_as_its_own(
    server: ServerHandle, tmp_path: pytest.TempPathFactory
) -> None:
    app_file = write_app(tmp_path, "identity", IDENTITY)  # type: ignore[arg-type]
    out = server.cli("run", str(app_file)).stdout.splitlines()
    assert out == ["caught: bad 1", "result is ours: True True", "argument is theirs: True"]


def test_a_script_importing_the_app_and_one_that_did_not(
    server: ServerHandle, tmp_path: pytest.TempPathFactory
) -> None:
    app_file = write_app(tmp_path, "identity", IDENTITY)  # type: ignore[arg-type]
    server.cli("deploy", str(app_file))
    imported = server.python(
        "import sys\n"
        f"sys.path.insert(0, {str(app_file.parent)!r})\n"
        "import identity\n"
        "print(isinstance(identity.make.remote(3), identity.Point))\n"
        "try:\n"
        "    identity.boom.remote(4)\n"
        "except identity.MyError as exc:\n"
        "    print('caught:', exc)\n"
    ).stdout.splitlines()
    assert imported == ["True", "caught: bad 4"]
    # Without the module the values still arrive, rebuilt from the container's copy.
    bare = server.python(
        "import coldsnap\n"
        "point = coldsnap.Function.from_name('test-identity', 'make').remote(6)\n"
        "print(type(point).__name__, point.x)\n"
        "try:\n"
        "    coldsnap.Function.from_name('test-identity', 'boom').remote(7)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    ).stdout.splitlines()
    assert bare == ["Point 6", "MyError bad 7"]


RELATIVE_FILE = """
import coldsnap

image = coldsnap.Image.from_host().add_local_file("settings.txt", "/etc/relapp/settings.txt")
app = coldsnap.App("test-relative-paths", image=image)


@app.function()
def read():
    return open("/etc/relapp/settings.txt").read()
"""


@pytest.fixture(scope="module")
def criu_server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def test_relative_image_paths_resolve_against_the_clients_directory(
    criu_server: ServerHandle,
) -> None:
    (criu_server.root / "settings.txt").write_text("from the client's directory")
    app_file = write_app(criu_server.root, "relapp", RELATIVE_FILE)
    criu_server.cli("deploy", str(app_file))  # run from criu_server.root
    out = criu_server.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-relative-paths', 'read').remote())\n"
    )
    assert out.stdout.strip() == "from the client's directory"


MULTI_FILE = """
import coldsnap
import helperpkg
from helpers import greeting

app = coldsnap.App("test-multi-file")


@app.function(enable_memory_snapshot=True)
def hello(name):
    return f"{greeting()} {name}{helperpkg.MARK}"
"""


def test_modules_next_to_the_app_file_join_its_image(
    criu_server: ServerHandle, tmp_path: pytest.TempPathFactory
) -> None:
    app_dir = tmp_path / "project"  # type: ignore[operator]
    (app_dir / "helperpkg").mkdir(parents=True)
    (app_dir / "helperpkg" / "__init__.py").write_text('MARK = "!"\n')
    (app_dir / "helpers.py").write_text('def greeting():\n    return "hello"\n')
    app_file = write_app(app_dir, "multi", MULTI_FILE)
    call = ("import coldsnap\n"
            "print(coldsnap.Function.from_name('test-multi-file', 'hello').remote('you'))\n")
    deployed = criu_server.cli("deploy", str(app_file)).stdout  # from another directory
    assert deployed.startswith("deployed test-multi-file")
    assert criu_server.python(call).stdout.strip() == "hello you!"
    # A changed helper is a new version: new containers, a new snapshot.
    (app_dir / "helpers.py").write_text('def greeting():\n    return "hi"\n')
    assert criu_server.cli("deploy", str(app_file)).stdout.startswith("deployed")
    assert criu_server.python(call).stdout.strip() == "hi you!"
    assert criu_server.cli("deploy", str(app_file)).stdout.startswith(
        "test-multi-file is up to date")  # bytecode caches the import left don't count
