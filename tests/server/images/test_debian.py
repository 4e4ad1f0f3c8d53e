"""The debian_slim base, built for real with debootstrap from the Debian archive.

Slow the first time on a host: each suite of the table is built into the host-wide
cache (``Settings.base_dir``), about a minute each, and later runs find it there in
milliseconds. The tests of concurrent and interrupted builds build into a temp dir
every run (about a minute). Marked ``debootstrap``: ``-m "not debootstrap"`` leaves
them out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from coldsnap.server.images import aptsources
from coldsnap.server.images.debian import (
    BUILDING_PREFIX,
    PACKAGES,
    DebianBase,
    DebianRecipe,
    ensure_base,
    ensure_debian_base,
    load_base,
)
from coldsnap.server.images.steps import DEFAULT_PATH, BuildError
from coldsnap.settings import Settings
from coldsnap.wire.bases import DEBIAN_SUITES, debian_python


def test_the_recipe_key_changes_with_what_decides_the_contents() -> None:
    recipe = DebianRecipe("bookworm", "http://deb.debian.org/debian")
    assert recipe.key == DebianRecipe("bookworm", "http://deb.debian.org/debian").key
    others = [dataclasses.replace(recipe, suite="trixie"),
              dataclasses.replace(recipe, mirror="http://other/debian"),
              dataclasses.replace(recipe, packages=(*PACKAGES, "curl")),
              dataclasses.replace(recipe, architecture="aarch64")]
    assert len({recipe.key, *(r.key for r in others)}) == 5
    assert recipe.name == f"debian-bookworm-{recipe.key[:16]}"


def require_debootstrap(recipe: DebianRecipe, base_dir: Path) -> None:
    """Skip where a base can't be built: not root, no debootstrap, no archive."""
    if load_base(base_dir / recipe.name) is not None:
        return  # built before: nothing to download
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    missing = [tool for tool in ("debootstrap", "unshare", "setpriv", "chroot")
               if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run scripts/setup.sh")
    url = f"{recipe.mirror}/dists/{recipe.suite}/InRelease"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15).close()
    except OSError as exc:
        pytest.skip(f"the Debian archive is out of reach ({url}: {exc})")


def recipe_for(python_version: str) -> DebianRecipe:
    suite = debian_python(python_version).suite
    return DebianRecipe(suite, aptsources.host_mirror(suite))


@dataclasses.dataclass
class Built:
    base: DebianBase
    messages: list[str]
    seconds: float


@pytest.fixture(scope="session", params=sorted(DEBIAN_SUITES))
def built(request: pytest.FixtureRequest) -> Built:
    """Each suite's base in the host-wide cache (built there the first time)."""
    base_dir = Settings.from_env().base_dir
    require_debootstrap(recipe_for(request.param), base_dir)
    messages: list[str] = []
    started = time.monotonic()
    base = ensure_debian_base(request.param, base_dir, messages.append)
    return Built(base, messages, time.monotonic() - started)


def in_base(base: DebianBase, *argv: str) -> str:
    done = subprocess.run(["unshare", "--mount", "--pid", "--fork", "chroot", str(base.rootfs),
                           *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.debootstrap
def test_python3_runs_inside_with_venv_and_ssl(built: Built) -> None:
    base = built.base
    version = in_base(base, base.python, "-c",
                      "import sys, venv, ssl, ensurepip; print(sys.version.split()[0])")
    assert version == base.python_version
    assert debian_python(version.rsplit(".", 1)[0]).suite == base.suite  # the table holds


@pytest.mark.debootstrap
def test_python_and_pip_are_on_path(built: Built) -> None:
    found = in_base(built.base, "sh", "-c", "command -v python; command -v pip").split()
    assert found == ["/usr/bin/python", "/usr/bin/pip"]
    minor = built.base.python_version.rsplit(".", 1)[0]
    assert f"(python {minor})" in in_base(built.base, "pip", "--version")


@pytest.mark.debootstrap
def test_base_json_records_the_build(built: Built) -> None:
    info = json.loads((built.base.rootfs.parent / "base.json").read_text())
    assert info["suite"] == built.base.suite
    assert info["python"] == "/usr/bin/python3" == built.base.python
    assert info["python_version"] == built.base.python_version
    assert info["packages"] == list(PACKAGES)
    assert info["key"] == built.base.key and built.base.rootfs.parent.name.endswith(
        built.base.key[:16])
    assert 0 < info["build_seconds"] < 3600
    assert 50e6 < info["size_bytes"] < 400e6


@pytest.mark.debootstrap
def test_the_base_is_slim_and_pip_may_install_into_it(built: Built) -> None:
    root = built.base.rootfs
    assert not list(root.glob("var/cache/apt/archives/*.deb"))
    assert not [p for p in (root / "var/lib/apt/lists").iterdir() if p.name != "partial"]
    assert not list(root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"))
    assert not list((root / "usr/share/man").iterdir())
    assert {p.name for p in root.glob("usr/share/doc/*/*")} == {"copyright"}
    sources = (root / "etc/apt/sources.list").read_text()
    assert f" {built.base.suite}-security main" in sources


@pytest.mark.debootstrap
def test_a_second_call_is_a_cache_hit(built: Built) -> None:
    messages: list[str] = []
    started = time.monotonic()
    again = ensure_debian_base(built.base.python_version.rsplit(".", 1)[0],
                               Settings.from_env().base_dir, messages.append)
    assert time.monotonic() - started < 0.5
    assert again == built.base
    assert messages == []


# -- builds into a temp dir: failures, an interrupted build, two builders at once -----


def test_an_unreachable_mirror_fails_saying_so_and_leaves_nothing(tmp_path: Path) -> None:
    recipe = DebianRecipe("bookworm", "http://127.0.0.1:9/debian")  # the discard port
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("needs root and debootstrap: run scripts/setup.sh")
    with pytest.raises(BuildError) as caught:
        ensure_base(recipe, tmp_path, lambda line: None)
    message = str(caught.value)
    assert "debootstrap of Debian bookworm failed (exit status" in message
    assert "command: setpriv --pdeathsig KILL unshare" in message
    assert "The Debian archive http://127.0.0.1:9/debian did not answer" in message
    assert leftovers(tmp_path) == []
    assert load_base(tmp_path / recipe.name) is None


class Interrupted(Exception):
    pass


@pytest.mark.debootstrap
def test_an_interrupted_build_leaves_nothing_that_looks_built(tmp_path: Path) -> None:
    recipe = recipe_for("3.11")
    require_debootstrap(recipe, tmp_path)

    def progress(line: str) -> None:
        if line.startswith("  debootstrap "):  # debootstrap has run a few seconds
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        ensure_base(recipe, tmp_path, progress)
    assert load_base(tmp_path / recipe.name) is None
    assert not (tmp_path / recipe.name).exists()
    assert leftovers(tmp_path) == []
    assert wait_for_no_process_under(tmp_path) == []


BUILDER = """
import sys
from pathlib import Path
from coldsnap.server.images.debian import DebianRecipe, ensure_base
ensure_base(DebianRecipe(sys.argv[1], sys.argv[2]), Path(sys.argv[3]),
            lambda line: print(line, flush=True))
"""


@pytest.mark.debootstrap
def test_a_killed_builder_then_two_builders_at_once_build_once(tmp_path: Path) -> None:
    recipe = recipe_for("3.11")
    require_debootstrap(recipe, tmp_path)
    kill_a_builder_mid_debootstrap(recipe, tmp_path)
    # What the killed build left is the half-built tree, never a base; its
    # debootstrap died with it (no orphan keeps writing there).
    assert load_base(tmp_path / recipe.name) is None
    assert len(leftovers(tmp_path)) == 1
    assert wait_for_no_process_under(tmp_path) == []
    (tmp_path / recipe.name / "rootfs").mkdir(parents=True)  # damaged: no base.json

    results: dict[int, DebianBase] = {}
    messages: dict[int, list[str]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def build(n: int) -> None:
        start.wait()
        results[n] = ensure_base(recipe, tmp_path, messages[n].append)

    threads = [threading.Thread(target=build, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    assert results[0] == results[1]
    built = [n for n in (0, 1) if any(m.startswith("Building the debian_slim") for m in
                                      messages[n])]
    assert len(built) == 1, messages
    waited = messages[1 - built[0]]
    assert waited[0].startswith("Waiting for another build of the debian_slim base (Debian "
                                f"{recipe.suite}) on this host")
    assert waited[-1].startswith("Another build on this host made the debian_slim base")
    assert leftovers(tmp_path) == []  # the killed build's tree was removed
    assert in_base(results[0], "python3", "-c", "print('ok')") == "ok"
    shutil.rmtree(tmp_path / recipe.name)  # 170 MB: not kept in the test's temp dir


def kill_a_builder_mid_debootstrap(recipe: DebianRecipe, base_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, recipe.suite, recipe.mirror,
                             str(base_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("  debootstrap "):
                break
        else:
            pytest.fail(f"the builder ended before debootstrap reported (exit {proc.wait()})")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def leftovers(base_dir: Path) -> list[str]:
    return sorted(p.name for p in base_dir.glob(f"{BUILDING_PREFIX}*"))


def wait_for_no_process_under(directory: Path, timeout: float = 10.0) -> list[str]:
    """Command lines of processes naming ``directory``, once none is left (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if entry.name.isdigit() and str(directory) in argv:
                found.append(argv.replace("\0", " "))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_base_dir_that_cant_be_made_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(BuildError, match="set COLDSNAP_BASE_DIR to a directory it may write"):
        ensure_debian_base("3.11", tmp_path / "file" / "bases", lambda line: None)
