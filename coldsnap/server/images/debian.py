"""The debian_slim base: a minimal Debian root filesystem with Python, once per host.

``ensure_debian_base`` answers with a base from the host-wide cache
(``Settings.base_dir``) or builds it with ``debootstrap --variant=minbase`` from the
Debian archive this host's apt uses. A base's directory is named by the hash of its
recipe (suite, packages, mirror, architecture, ``RECIPE_VERSION``), so every server
on the host shares it. A build runs in a ``.building-*`` directory that is renamed
into place when complete; a lock file per base makes a second builder wait for the
first instead of building it again. Example::

    base = ensure_debian_base("3.11", Path("/var/cache/coldsnap/bases"), print)
    base.rootfs  # .../debian-bookworm-<hash>/rootfs, with /usr/bin/python3 3.11.x
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from coldsnap.server.images import aptsources, trees
from coldsnap.server.images.steps import (
    DEFAULT_PATH,
    TICK_S,
    BuildError,
    Progress,
    format_failure,
    run_logged,
)
from coldsnap.wire.bases import debian_python

# Bump when the build below changes what a base holds: old bases are then rebuilt.
RECIPE_VERSION = 1
# What a Python serverless image needs beyond minbase: python3 with venv and ensurepip,
# pip (PEP 668's marker is removed, as in python:*-slim, so `pip install` works),
# `python` on PATH, TLS roots, /etc/services and /etc/protocols, time zones.
PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3",
            "ca-certificates", "netbase", "tzdata")
PYTHON = "/usr/bin/python3"
INFO_FILE = "base.json"
BUILDING_PREFIX = ".building-"
LOCK_TICK_S = 0.5
PROBE = "import sys, venv, ssl, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"


@dataclasses.dataclass(frozen=True)
class DebianBase:
    """A built base: its root filesystem and the Python inside it."""

    rootfs: Path
    python: str  # the interpreter's path inside rootfs
    python_version: str  # exact, as the interpreter reports it: "3.11.2"
    suite: str
    key: str  # the recipe's hash: names the directory


@dataclasses.dataclass(frozen=True)
class DebianRecipe:
    """Everything that decides a base's contents, and so its cache key."""

    suite: str
    mirror: str
    packages: tuple[str, ...] = PACKAGES
    architecture: str = dataclasses.field(default_factory=platform.machine)

    @property
    def key(self) -> str:
        fields = {**dataclasses.asdict(self), "recipe": RECIPE_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        return f"debian-{self.suite}-{self.key[:16]}"


def ensure_debian_base(
    python_version: str | None, base_dir: Path, progress: Progress
) -> DebianBase:
    """The debian_slim base with ``python_version``, built first if the host lacks it.

    InvalidError for a Python no suite ships; BuildError if the build fails.
    """
    suite = debian_python(python_version).suite
    return ensure_base(DebianRecipe(suite, aptsources.host_mirror(suite)), base_dir, progress)


def ensure_base(recipe: DebianRecipe, base_dir: Path, progress: Progress) -> DebianBase:
    """The base of ``recipe`` from ``base_dir``, built (once per host) if absent."""
    final = base_dir / recipe.name
    found = load_base(final)
    if found is not None:
        return found
    try:
        base_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"can't create the host's base image cache {base_dir}: {exc}. Run "
                         "the server as root, or set COLDSNAP_BASE_DIR to a directory it may "
                         "write.") from exc
    with _BuildLock(base_dir / f".{recipe.name}.lock", recipe, progress):
        found = load_base(final)
        if found is not None:
            progress(f"Another build on this host made the debian_slim base {final}.")
            return found
        _remove_leftovers(base_dir, recipe.name)
        return _build(recipe, final, progress)


def load_base(directory: Path) -> DebianBase | None:
    """The base in ``directory``, or None while it is absent (or incomplete)."""
    try:
        info = json.loads((directory / INFO_FILE).read_text())
        return DebianBase(rootfs=directory / "rootfs", python=info["python"],
                          python_version=info["python_version"], suite=info["suite"],
                          key=info["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _BuildLock:
    """An exclusive flock on a base's lock file; waits, saying so, while another holds it.

    Waiting polls rather than blocks, so a progress callback that raises (the client
    went away) ends the wait.
    """

    def __init__(self, path: Path, recipe: DebianRecipe, progress: Progress) -> None:
        self.path, self.recipe, self.progress = path, recipe, progress
        self.fd = -1

    def __enter__(self) -> _BuildLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._wait()
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def _wait(self) -> None:
        started = time.monotonic()
        told: float | None = None
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if told is None:
                self.progress(f"Waiting for another build of the debian_slim base (Debian "
                              f"{self.recipe.suite}) on this host to finish ...")
                told = now
            elif now - told >= TICK_S:
                self.progress(f"  waiting for the other build of Debian {self.recipe.suite}: "
                              f"{now - started:.0f}s")
                told = now
            time.sleep(LOCK_TICK_S)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock


def _remove_leftovers(base_dir: Path, name: str) -> None:
    # Under the lock nobody is building this base: a .building dir of it is what a
    # killed build left behind, and its directory without a base.json was damaged
    # by hand (a build renames a whole base into place).
    for stale in [*base_dir.glob(f"{BUILDING_PREFIX}{name}-*"), base_dir / name]:
        if stale.exists():
            trees.discard(stale)


def _build(recipe: DebianRecipe, final: Path, progress: Progress) -> DebianBase:
    work = final.with_name(f"{BUILDING_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    log = final.with_name(f"{final.name}.log")
    log.write_text("")
    progress(f"Building the debian_slim base: Debian {recipe.suite} with python3 from "
             f"{recipe.mirror} (debootstrap; about a minute, once per host) ...")
    started = time.monotonic()
    try:
        _debootstrap(recipe, work / "rootfs", log, progress)
        trees.slim(work / "rootfs", aptsources.image_sources(recipe.suite, recipe.mirror))
        version = _probe_python(work / "rootfs", log)
        size = trees.tree_bytes(work / "rootfs")
        info = {"suite": recipe.suite, "python": PYTHON, "python_version": version,
                "packages": list(recipe.packages), "mirror": recipe.mirror,
                "architecture": recipe.architecture, "recipe": RECIPE_VERSION,
                "key": recipe.key, "build_seconds": round(time.monotonic() - started, 1),
                "size_bytes": size}
        (work / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        work.rename(final)
    except BaseException:
        trees.discard(work)
        raise
    progress(f"Built the debian_slim base (Debian {recipe.suite}, Python {version}) in "
             f"{info['build_seconds']}s: {size / 1e6:.0f} MB at {final}")
    found = load_base(final)
    assert found is not None
    return found


def debootstrap_command(recipe: DebianRecipe, rootfs: Path) -> list[str]:
    """debootstrap in mount and pid namespaces of its own.

    debootstrap mounts /proc, /sys and (in a container) binds /dev nodes into the
    target: in a private mount namespace those mounts end with it, even when it is
    killed, and never reach the host, so removing a half-built tree can't reach
    them. It dies with its caller: setpriv's parent-death signal reaches unshare,
    and --kill-child takes debootstrap with it.
    """
    return ["setpriv", "--pdeathsig", "KILL",
            "unshare", "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child",
            "debootstrap", "--variant=minbase", "--components=main",
            f"--include={','.join(recipe.packages)}", recipe.suite, str(rootfs), recipe.mirror]


def _debootstrap(recipe: DebianRecipe, rootfs: Path, log: Path, progress: Progress) -> None:
    command = debootstrap_command(recipe, rootfs)
    if shutil.which("debootstrap") is None:
        raise BuildError("building the debian_slim base needs debootstrap, which this host "
                         "lacks: run `apt-get install debootstrap` (scripts/setup.sh does).")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}

    def tick(elapsed: float, last: str) -> None:
        progress(f"  debootstrap {recipe.suite}: {elapsed:.0f}s  {last.strip()[:100]}")

    code, tail = run_logged(command, env, log, tick)
    if code != 0:
        what = "timed out" if code is None else f"failed (exit status {code})"
        raise BuildError(format_failure(
            f"debootstrap of Debian {recipe.suite} {what} while building the debian_slim "
            "base.", shlex.join(command), tail, _debootstrap_fix(tail, recipe, log),
        ))  # fmt: skip


def _debootstrap_fix(tail: list[str], recipe: DebianRecipe, log: Path) -> str:
    text = "\n".join(tail)
    if any(s in text for s in ("Failed getting release file", "Temporary failure",
                               "Could not resolve", "Connection refused", "Network is")):
        return (f"The Debian archive {recipe.mirror} did not answer: check this host's "
                "network and the mirror in /etc/apt/sources.list(.d) (the base is built from "
                f"the one apt uses), then deploy again. Full log: {log}")
    if "Couldn't find these debs" in text:
        return (f"The archive {recipe.mirror} lacks a package of the base for {recipe.suite}: "
                f"check that the mirror carries {recipe.suite}. Full log: {log}")
    return (f"See the full log at {log} (and debootstrap's own, debootstrap/debootstrap.log "
            "in the half-built tree, which is removed), then deploy again.")


def _probe_python(rootfs: Path, log: Path) -> str:
    """The exact version of the base's python3, which must import venv and ssl."""
    command = ["chroot", str(rootfs), PYTHON, "-I", "-c", PROBE]
    env = {"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    with open(log, "a") as handle:
        handle.write(f"$ {shlex.join(command)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise BuildError(format_failure(
            "the debian_slim base's python3 does not run.", shlex.join(command),
            (done.stdout + done.stderr).splitlines()[-20:],
            f"This is a bug in coldsnap's debian_slim recipe (or a broken mirror). Full log: {log}",
        ))  # fmt: skip
    return done.stdout.strip()
