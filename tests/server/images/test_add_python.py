"""add_python's layer: Debian's Python made self-contained under /opt/coldsnap/pythonX.Y.

Made for real from the debian_slim bases in the host-wide cache (built there first
if the host lacks them, as in test_debian.py), and run chrooted into the layer
alone, where no other file of any system is in reach.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from coldsnap.server.images import add_python
from coldsnap.server.images.add_python import AddedPython, ensure_python_layer, load_layer
from coldsnap.server.images.debian import ensure_debian_base
from coldsnap.server.images.steps import DEFAULT_PATH, BuildError
from coldsnap.settings import Settings
from coldsnap.wire.bases import DEBIAN_SUITES
from tests.server.images.test_debian import recipe_for, require_debootstrap


@dataclasses.dataclass
class Made:
    added: AddedPython
    version: str  # "3.11"


@pytest.fixture(scope="session", params=sorted(DEBIAN_SUITES))
def made(request: pytest.FixtureRequest) -> Made:
    """Each version's layer in the host-wide cache (made there the first time)."""
    base_dir = Settings.from_env().base_dir
    require_debootstrap(recipe_for(request.param), base_dir)
    return Made(ensure_python_layer(request.param, base_dir, lambda line: None), request.param)


def in_layer(layer: Path, *argv: str) -> str:
    done = subprocess.run(["unshare", "--mount", "--pid", "--fork", "chroot", str(layer), *argv],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


RUNS = """
import ctypes, json, os, sqlite3, ssl, subprocess, sys
child = subprocess.run([sys.executable, "-c", "import sys; print(sys.prefix)"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "child": child,
                  "version": "%d.%d" % sys.version_info[:2],
                  "getpid": ctypes.CDLL("libc.so.6").getpid() == os.getpid(),
                  "ssl": ssl.OPENSSL_VERSION.startswith("OpenSSL 3"),
                  "sqlite": sqlite3.connect(":memory:").execute("select 1").fetchone()[0]}))
"""


def test_the_layer_runs_on_its_own_and_so_do_its_subprocesses(made: Made) -> None:
    prefix = f"/opt/coldsnap/python{made.version}"
    seen = json.loads(in_layer(made.added.layer, made.added.python, "-I", "-c", RUNS))
    assert seen == {"executable": made.added.python, "prefix": prefix, "child": prefix,
                    "version": made.version, "getpid": True, "ssl": True, "sqlite": 1}
    assert made.added.python_version.startswith(f"{made.version}.")


def test_pip_and_python_commands_are_beside_the_interpreter(made: Made) -> None:
    bin_dir = made.added.layer / made.added.bin_dir.lstrip("/")
    assert {p.name for p in bin_dir.iterdir()} == {
        f"python{made.version}", "python3", "python", "pip", "pip3", f"pip{made.version}"}
    assert f"(python {made.version})" in in_layer(made.added.layer, f"{made.added.bin_dir}/pip",
                                                  "--version")


def test_the_layer_holds_only_the_prefix_which_points_only_into_itself(made: Made) -> None:
    layer = made.added.layer
    assert [p.name for p in layer.iterdir()] == ["opt"]
    assert [p.name for p in (layer / "opt/coldsnap").iterdir()] == [f"python{made.version}"]
    interpreter = str(layer / made.added.python.lstrip("/"))
    libdir = f"/opt/coldsnap/python{made.version}/lib/x86_64-linux-gnu"
    assert subprocess.run(["patchelf", "--print-interpreter", interpreter], capture_output=True,
                          text=True, check=True).stdout.strip() == f"{libdir}/ld-linux-x86-64.so.2"
    assert subprocess.run(["patchelf", "--print-rpath", interpreter], capture_output=True,
                          text=True, check=True).stdout.strip() == libdir


def test_a_made_layer_is_found_again_without_work(made: Made) -> None:
    messages: list[str] = []
    again = ensure_python_layer(made.version, Settings.from_env().base_dir, messages.append)
    assert again == made.added
    assert messages == []


def test_an_incomplete_layer_directory_is_not_a_layer(tmp_path: Path) -> None:
    (tmp_path / "python3.11-x" / "layer").mkdir(parents=True)
    assert load_layer(tmp_path / "python3.11-x") is None


def test_without_patchelf_it_says_how_to_get_it(made: Made, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base = ensure_debian_base(made.version, Settings.from_env().base_dir, lambda line: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no patchelf on it
    with pytest.raises(BuildError, match=r"needs patchelf .* run `apt-get install patchelf`"):
        add_python._make(base, made.version, tmp_path / "layer")


def test_what_a_killed_build_left_is_removed_and_a_live_one_is_kept(made: Made,
                                                                     tmp_path: Path) -> None:
    final = tmp_path / "python3.11-abc"
    dead = tmp_path / f".building-python3.11-abc-{2**22 + 1}-1234abcd"  # above pid_max
    alive = tmp_path / f".building-python3.11-abc-{os.getpid()}-1234abcd"
    for directory in (dead, alive):
        (directory / "layer").mkdir(parents=True)
    add_python._remove_leftovers(final)
    assert not dead.exists() and alive.exists()


def test_a_damaged_layer_directory_is_named_in_the_error(made: Made, tmp_path: Path) -> None:
    base = ensure_debian_base(made.version, Settings.from_env().base_dir, lambda line: None)
    final = tmp_path / f"python{made.version}-damaged"
    (final / "layer").mkdir(parents=True)  # no python.json: a build did not finish it
    with pytest.raises(BuildError, match=f"{final} exists but is incomplete: remove it"):
        add_python._make_in_place(base, made.version, "k", final)
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # the attempt was removed
