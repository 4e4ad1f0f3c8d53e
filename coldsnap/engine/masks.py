"""What a container must not see of the host's root filesystem, and what it must.

A container's root is an overlay whose lowest layer is the host's ``/``
(nsinit.py). Hidden from it:

- ``HIDDEN_HOST_DIRS``: home directories, the host's /tmp (the container gets an
  empty one of its own), /var/lib; and ``HIDDEN_FILES`` (password hashes);
- every coldsnap server's state, snapshot, image and run dirs, from a host-wide
  registry each criu-engine server writes itself into (``ServerRegistry``).

What the runtime itself needs stays visible even inside a hidden dir
(``runtime_paths``): the interpreter's prefix (under /root/.pyenv on some hosts),
the server's virtualenv and site-packages, the coldsnap package and this server's
images (their venvs). Nothing else beside them.

All of it is one extra lower layer of the overlay, just above the host's ``/``
(``MaskLayers``), so no mount is added: an opaque directory hides what lies below
it; a directory with an overlay *redirect* to its own absolute path, under opaque
parents, shows the host's directory at that path and nothing beside it. Image
layers and the snapshot's layer sit above it, so what a build wrote under /root
or /tmp stays visible. A restore gets the masks of the moment, not those of the
dump.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import site
import stat
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

HIDDEN_HOST_DIRS = ("/root", "/home", "/tmp", "/var/lib")
# Host files no container needs; whiteouts in the mask layer remove them.
HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
# One file per state dir; it outlives the server, like the files it hides.
SERVER_REGISTRY = Path("/var/lib/coldsnap-servers")
# The kernel follows a redirect up to this long (overlay's redirect_max default).
REDIRECT_MAX = 256
OPAQUE = "trusted.overlay.opaque"
REDIRECT = "trusted.overlay.redirect"


@dataclasses.dataclass(frozen=True)
class MaskPlan:
    """Directories to make opaque (empty) and to redirect (show the host's), by path."""

    opaque: tuple[str, ...]
    redirects: tuple[str, ...]

    def digest(self) -> str:
        text = json.dumps([self.opaque, self.redirects, HIDDEN_FILES])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_masks(hidden: Iterable[str], visible: Iterable[str]) -> MaskPlan:
    """Hide every path of ``hidden`` but keep every path of ``visible`` (which wins
    where both name one path). A visible path inside a hidden one gets a redirect,
    and each directory between them is opaque so that its siblings stay hidden."""
    hidden_set = {os.path.normpath(p) for p in hidden}
    visible_set = {os.path.normpath(p) for p in visible}

    def nearest(path: str) -> str:  # "v", "h" or "" for the closest marked ancestor-or-self
        for candidate in (path, *map(str, Path(path).parents)):
            if candidate in visible_set:
                return "v"
            if candidate in hidden_set:
                return "h"
        return ""

    opaque = {h for h in hidden_set - visible_set if nearest(os.path.dirname(h)) != "h"}
    redirects = set()
    for path in visible_set:
        if nearest(os.path.dirname(path)) != "h":
            continue  # not inside a hidden dir: the host's view stays
        redirects.add(path)
        parent = os.path.dirname(path)
        while parent not in hidden_set:
            opaque.add(parent)
            parent = os.path.dirname(parent)
    return MaskPlan(tuple(sorted(opaque)), tuple(sorted(redirects)))


def runtime_paths(images_dir: Path) -> list[str]:
    """What a container's runtime reads from the host: the interpreter's prefix, this
    process's venv and site-packages, the coldsnap package (for an editable install, its
    whole checkout: the server's own code) and the images dir (venvs)."""
    package = Path(__file__).resolve().parents[1]
    if (package.parent / "pyproject.toml").is_file():  # a checkout, e.g. under /tmp
        package = package.parent
    paths = {sys.base_prefix, sys.prefix, *site.getsitepackages(), str(package)}
    found = {str(Path(p).resolve()) for p in paths if Path(p).is_dir()}
    return sorted(found | {str(images_dir.resolve())})  # made at the first build


class ServerRegistry:
    """A host-wide list of every criu-engine server's dirs, so that each server's
    containers hide every other's (and its own). A server adds itself at start; an
    entry stays after it stops (its files do too) until none of its own dirs holds
    anything. Host-wide caches that every server shares (``shared``: the base and
    registry images) never keep an entry: each live server lists them itself, and an
    entry kept by them would stay forever (a test run once left 3,444, and planning
    the masks over them took 200 ms of every restore after a server started)."""

    def __init__(self, root: Path = SERVER_REGISTRY) -> None:
        self.root = root
        self._shared: frozenset[str] = frozenset()

    def register(self, state_dir: Path, dirs: Iterable[Path],
                 shared: Iterable[Path] = ()) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._shared = frozenset(str(Path(d).resolve()) for d in shared)
        name = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        own = {str(Path(d).resolve()) for d in (state_dir, *dirs)} - self._shared
        entry = {"state_dir": str(state_dir), "pid": os.getpid(), "dirs": sorted(own),
                 "shared": sorted(self._shared)}
        tmp = self.root / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.write_text(json.dumps(entry))
        os.rename(tmp, self.root / f"{name}.json")
        self.prune()

    def dirs(self) -> list[str]:
        """Every registered dir (a dir that no longer exists too: it may come back)."""
        found: set[str] = set()
        for entry in self._entries():
            found.update(entry[1])
        return sorted(found)

    def stamp(self) -> int:
        """Changes whenever an entry is added, replaced or removed (the registry dir's
        mtime: entries are renamed into place and unlinked, never edited)."""
        try:
            return self.root.stat().st_mtime_ns
        except OSError:
            return 0

    def prune(self) -> None:
        """Drop entries none of whose own dirs holds anything any more (test servers'
        temp dirs; an empty dir hides nothing). Entries written before ``shared`` was
        kept apart list the shared caches among their dirs: this server's are left out."""
        for path, dirs in self._entries():
            if not any(_holds_something(d) for d in dirs if d not in self._shared):
                path.unlink(missing_ok=True)

    def _entries(self) -> list[tuple[Path, list[str]]]:
        entries = []
        with contextlib.suppress(OSError):
            for path in self.root.glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    entry = json.loads(path.read_text())
                    entries.append((path, [str(d) for d in
                                           [*entry["dirs"], *entry.get("shared", [])]]))
        return entries


def _holds_something(path: str) -> bool:
    """True for a file, or a directory with an entry (one that can't be listed, too)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except NotADirectoryError:
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return True


class ContainerMasks:
    """One server's masks: it registers the server's dirs, then ``layer()`` gives the
    mask layer of the moment (made anew when the registry changed, as servers come and
    go; else the last one: planning over hundreds of entries takes milliseconds)."""

    def __init__(self, state_dir: Path, images_dir: Path, other_dirs: list[Path],
                 run_dir: Path, registry: ServerRegistry | None = None,
                 shared_dirs: list[Path] | None = None) -> None:
        self.registry = registry or ServerRegistry()
        self.registry.register(state_dir, [images_dir, *other_dirs], shared_dirs or [])
        self.visible = runtime_paths(images_dir)
        self._layers = MaskLayers(run_dir)
        self._last: tuple[int, Path] | None = None  # (registry stamp, its layer)

    def layer(self) -> Path:
        stamp = self.registry.stamp()
        if self._last is not None and self._last[0] == stamp and self._last[1].is_dir():
            return self._last[1]
        plan = plan_masks([*HIDDEN_HOST_DIRS, *self.registry.dirs()], self.visible)
        path = self._layers.layer(plan)
        self._last = (stamp, path)
        return path


class MaskLayers:
    """The mask layer of each plan, made once under ``<run dir>/masks/<digest>``.

    A layer is never changed once made (containers have it mounted); a new plan
    (another server registered) gets a new one. They are small and go with the run dir.
    """

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "masks"

    def layer(self, plan: MaskPlan) -> Path:
        path = self.dir / plan.digest()
        if path.is_dir():
            return path
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.dir / f".{plan.digest()}.{uuid.uuid4().hex[:6]}.tmp"
        tmp.mkdir()
        _build(tmp, plan)
        try:
            os.rename(tmp, path)
        except OSError:  # another thread made it first
            if not path.is_dir():
                raise
        return path


def _build(layer: Path, plan: MaskPlan) -> None:
    for path in plan.opaque:  # sorted: parents first
        target = _make_dir(layer, path)
        os.setxattr(target, OPAQUE, b"y")
    for path in plan.redirects:
        if len(path.encode()) >= REDIRECT_MAX:
            raise ValueError(f"{path} is too long for an overlay redirect "
                             f"({REDIRECT_MAX} bytes): move it to a shorter path")
        os.setxattr(_make_dir(layer, path), REDIRECT, path.encode())
    for secret in HIDDEN_FILES:
        if Path(secret).exists():
            _make_dir(layer, os.path.dirname(secret))
            os.mknod(layer / secret.lstrip("/"), stat.S_IFCHR, 0)  # a whiteout


def _make_dir(layer: Path, host_path: str) -> Path:
    """``host_path`` and its parents in ``layer``, with the host's mode and owner (0700
    root for what the host lacks). A directory in a layer lends its attributes to the
    merged one, so a plain mkdir would turn /tmp into 0755 inside the container."""
    host = Path(host_path)
    for part in [*reversed(host.parents), host]:
        if part == Path("/"):
            continue
        target = layer / str(part).lstrip("/")
        if target.exists():
            continue
        target.mkdir()
        try:
            st = part.stat()
        except OSError:
            target.chmod(0o700)
            continue
        os.chown(target, st.st_uid, st.st_gid)
        target.chmod(stat.S_IMODE(st.st_mode))
    return layer / host_path.lstrip("/")
