"""Pulls OCI and Docker images from a registry into a cache of root filesystems.

The tools are Debian's ``skopeo`` (talks to registries) and ``umoci`` (unpacks
OCI layouts); ``scripts/setup.sh`` installs both. The cache is content-addressed
by the image's manifest digest::

    <cache>/<hex of the digest>/rootfs/        the image's files, owners kept
    <cache>/<hex of the digest>/image.json     PulledImage.to_dict(): config, Python
    <cache>/tags/<hash of the ref>.json        the digest a tag last resolved to
    <cache>/.partial-<hex>-<pid>-<random>/     a pull under way, or one that crashed

A pull:

1. A reference by digest (``name@sha256:...``) goes straight to the cache and
   needs no registry when it is there. A tag is resolved to a digest with
   ``skopeo inspect`` every time (tags move), so it needs the registry; then the
   cache is looked up.
2. ``skopeo copy`` copies ``repository@digest`` (never the tag: it could move
   meanwhile) to an OCI layout inside a partial directory.
3. ``umoci raw unpack`` unpacks its layers into ``rootfs/`` there.
4. The image config (Env, WorkingDir, Entrypoint, Cmd, User) is read from the
   layout and the image's Python is looked for (see ``oci_python``); the layout
   is removed and ``image.json`` written.
5. The partial directory is renamed to the digest's: a digest directory exists
   only complete. A crashed pull leaves a partial directory, removed by the next
   pull once its process is gone.

TLS is verified except for registries on this machine (localhost, 127.x, ::1);
``insecure`` overrides that either way.

Example::

    image = pull("python:3.11-slim", Path("/var/lib/coldsnap-images/oci"), print)
    image.rootfs, image.digest, image.python   # .../rootfs, 'sha256:...', ImagePython(...)
    python = image_python(image.ref, image.python, add_python=None)  # or NoUsablePython
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.server.images.oci_errors import PullError, explain_failure, missing_tools
from coldsnap.server.images.oci_python import ImagePython, NoUsablePython, find_python, image_python
from coldsnap.server.images.oci_ref import DIGEST, BadReference, ImageRef
from coldsnap.server.images.steps import Progress

__all__ = ["BadReference", "ImagePython", "NoUsablePython", "PullError", "PulledImage",
           "image_python", "pull"]

MARKER = "image.json"
LAYOUT_TAG = "image"
PULL_TIMEOUT_S = 3600.0
INSPECT_TIMEOUT_S = 120.0
TAIL_LINES = 20


@dataclasses.dataclass(frozen=True)
class PulledImage:
    """An unpacked image: where its files are and what its config asks for."""

    ref: str  # the full reference pulled: docker.io/library/python:3.11-slim
    digest: str  # of its manifest: sha256:...
    rootfs: Path
    env: dict[str, str]
    workdir: str  # "/" where the image sets none
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str  # "" where the image sets none (root)
    python: ImagePython | None  # None: the image has no python3/python in its PATH
    from_cache: bool = False  # this pull found it unpacked already

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "digest": self.digest, "env": dict(self.env),
            "workdir": self.workdir, "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd), "user": self.user,
            "python": dataclasses.asdict(self.python) if self.python else None,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, record: dict[str, Any], rootfs: Path) -> PulledImage:
        python = record.get("python")
        return cls(
            ref=record["ref"], digest=record["digest"], rootfs=rootfs,
            env=dict(record["env"]), workdir=record["workdir"],
            entrypoint=tuple(record["entrypoint"]), cmd=tuple(record["cmd"]),
            user=record["user"], python=ImagePython(**python) if python else None,
        )  # fmt: skip


def pull(ref: str, cache_dir: Path, progress: Progress, insecure: bool | None = None
         ) -> PulledImage:
    """The image ``ref`` unpacked under ``cache_dir``, pulled unless already there.

    ``insecure`` None: plain HTTP and unverified TLS only for registries on this
    machine; True or False forces it. Raises BadReference for a malformed ``ref``
    and PullError, whose message says what to do, for everything else.
    """
    image_ref = ImageRef.parse(ref)
    tls_off = image_ref.is_local() if insecure is None else insecure
    cache = _Cache(cache_dir)
    layers = None
    if image_ref.digest:
        digest = image_ref.digest
    else:
        progress(f"{image_ref.name}: resolving the tag with the registry")
        digest, layers = _inspect(image_ref, tls_off, cache)
        cache.remember(image_ref, digest)
    found = cache.load(digest)
    if found is not None:
        progress(f"{image_ref.name}: cached ({_short(digest)}), no pull needed")
        return dataclasses.replace(found, ref=image_ref.name, from_cache=True)
    if layers is None:
        _, layers = _inspect(image_ref, tls_off, cache)
    return _pull_new(image_ref, digest, layers, tls_off, cache, progress)


def _inspect(ref: ImageRef, tls_off: bool, cache: _Cache) -> tuple[str, int]:
    """The manifest digest ``ref`` names now, and its number of layers (for progress)."""
    argv = ["skopeo", "inspect", "--no-tags", f"--tls-verify={str(not tls_off).lower()}",
            "--format", "{{.Digest}} {{len .Layers}}", ref.transport()]
    code, tail = _run(argv, INSPECT_TIMEOUT_S)
    if code != 0:
        raise PullError(explain_failure(ref, argv, tail, code, cache.known(ref)))
    for line in reversed(tail):
        digest, _, layers = line.partition(" ")
        if DIGEST.fullmatch(digest) and layers.isdigit():
            return digest, int(layers)
    raise PullError(f"skopeo inspect {ref.name} printed no digest: update skopeo "
                    "(scripts/setup.sh) and try again. It printed:\n" + "\n".join(tail))


def _pull_new(ref: ImageRef, digest: str, layers: int, tls_off: bool, cache: _Cache,
              progress: Progress) -> PulledImage:
    started = time.monotonic()
    cache.sweep()
    work = cache.partial_dir(digest)
    try:
        layout = _copy(ref.pinned(digest), layers, tls_off, work, progress)
        config = _image_config(layout)
        rootfs = _unpack(layout, work / "rootfs", layers, progress)
        shutil.rmtree(layout)
        image = _describe(ref, digest, rootfs, config)
        _write_json(work / MARKER, image.to_dict())
        image = cache.publish(work, digest, image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = f"Python {image.python.version} at {image.python.path}" if image.python else "no Python"
    progress(f"{ref.name}: pulled {_short(digest)} in {time.monotonic() - started:.1f}s "
             f"({_layers(layers)}, {where})")
    return image


def _copy(ref: ImageRef, layers: int, tls_off: bool, work: Path, progress: Progress) -> Path:
    layout = work / "layout"
    argv = ["skopeo", "copy", f"--src-tls-verify={str(not tls_off).lower()}",
            ref.transport(), f"oci:{layout}:{LAYOUT_TAG}"]
    blobs = 0

    def on_line(line: str) -> None:
        nonlocal blobs
        if line.startswith("Copying blob "):
            blobs += 1
            progress(f"{ref.repository}: pulling layer {blobs} of {layers} "
                     f"({line.split()[2][:19]})")

    progress(f"{ref.repository}: pulling {_short(ref.digest or '')}")
    # skopeo's temporary files go with the pull, on the cache's filesystem.
    code, tail = _run(argv, PULL_TIMEOUT_S, on_line, env={**os.environ, "TMPDIR": str(work)})
    if code != 0:
        raise PullError(explain_failure(ref, argv, tail, code, None))
    size = sum(f.stat().st_size for f in (layout / "blobs").rglob("*") if f.is_file())
    progress(f"{ref.repository}: pulled {_layers(blobs)}, {size / 1e6:.1f} MB")
    return layout


def _unpack(layout: Path, rootfs: Path, layers: int, progress: Progress) -> Path:
    progress(f"unpacking {_layers(layers)}")
    started = time.monotonic()
    rootless = [] if os.geteuid() == 0 else ["--rootless"]
    argv = ["umoci", "raw", "unpack", *rootless, "--image", f"{layout}:{LAYOUT_TAG}",
            str(rootfs)]
    code, tail = _run(argv, PULL_TIMEOUT_S)
    if code != 0:
        shown = "\n".join(tail) or "(no output)"
        raise PullError(f"unpacking the image failed (umoci exit status {code}).\n"
                        f"  command: {' '.join(argv)}\n{shown}\n"
                        f"Check the free space and the filesystem of {rootfs.parent} "
                        "(df -h), then pull again.")
    progress(f"unpacked in {time.monotonic() - started:.1f}s")
    return rootfs


def _image_config(layout: Path) -> dict[str, Any]:
    """The ``config`` object of the image config blob that the layout's tag names."""
    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == LAYOUT_TAG:
            manifest = _blob(layout, entry["digest"])
            config = _blob(layout, manifest["config"]["digest"])
            return dict(config.get("config") or {})
    raise PullError(f"skopeo wrote no image tagged {LAYOUT_TAG!r} in {layout}: "
                    "update skopeo (scripts/setup.sh) and try again")


def _blob(layout: Path, digest: str) -> dict[str, Any]:
    algorithm, hexdigest = digest.split(":", 1)
    return dict(json.loads((layout / "blobs" / algorithm / hexdigest).read_text()))


def _describe(ref: ImageRef, digest: str, rootfs: Path, config: dict[str, Any]) -> PulledImage:
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    return PulledImage(
        ref=ref.name, digest=digest, rootfs=rootfs, env=env,
        workdir=config.get("WorkingDir") or "/",
        entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
        user=config.get("User") or "", python=find_python(rootfs, env.get("PATH")),
    )  # fmt: skip


class _Cache:
    """The directories of one cache: complete digests, partial pulls, tag memory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, digest: str) -> Path:
        return self.root / digest.split(":", 1)[-1]

    def load(self, digest: str) -> PulledImage | None:
        """The cached image of ``digest``, or None if absent or damaged."""
        path = self.dir(digest)
        try:
            record = json.loads((path / MARKER).read_text())
            image = PulledImage.from_dict(record, path / "rootfs")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return image if image.rootfs.is_dir() and image.digest == digest else None

    def partial_dir(self, digest: str) -> Path:
        name = f".partial-{self.dir(digest).name[:12]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        path = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        # Only root may enter: an image's setuid binaries must not be runnable by the
        # host's users from the cache (containers see the rootfs through their mounts).
        path.mkdir(mode=0o700)
        return path

    def publish(self, work: Path, digest: str, image: PulledImage) -> PulledImage:
        """Rename ``work`` to the digest's directory; a complete one already there wins."""
        final = self.dir(digest)
        if final.exists():
            existing = self.load(digest)
            if existing is not None:  # another pull of the same digest finished first
                return dataclasses.replace(existing, ref=image.ref)
            self._discard(final)  # not ours, not complete: put there by hand
        try:
            os.rename(work, final)
        except OSError:  # another pull of the digest renamed its copy in meanwhile
            existing = self.load(digest)
            if existing is None:
                raise
            return dataclasses.replace(existing, ref=image.ref)
        return dataclasses.replace(image, rootfs=final / "rootfs")

    def sweep(self) -> None:
        """Remove partial pulls whose process is gone (crashed or killed)."""
        for path in self.root.glob(".partial-*"):
            try:
                pid = int(path.name.split("-")[2])
            except (IndexError, ValueError):
                continue
            if not _alive(pid):
                self._discard(path)

    def remember(self, ref: ImageRef, digest: str) -> None:
        _write_json(self._tag_file(ref), {"ref": ref.name, "digest": digest})

    def known(self, ref: ImageRef) -> str | None:
        """The digest ``ref`` resolved to last time, if that image is still cached."""
        try:
            digest = str(json.loads(self._tag_file(ref).read_text())["digest"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return digest if self.load(digest) is not None else None

    def _tag_file(self, ref: ImageRef) -> Path:
        return self.root / "tags" / f"{hashlib.sha256(ref.name.encode()).hexdigest()[:32]}.json"

    def _discard(self, path: Path) -> None:
        # Rename first so a half-removed tree never sits under a name that counts.
        trash = self.root / f".trash-{uuid.uuid4().hex[:12]}"
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)


def _run(argv: list[str], timeout_s: float, on_line: Callable[[str], None] | None = None,
         env: dict[str, str] | None = None) -> tuple[int | None, list[str]]:
    """Run ``argv``, passing each output line to ``on_line``; (exit status or None, tail)."""
    if (absent := missing_tools([argv[0]])):
        raise PullError(absent)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    assert proc.stdout is not None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES * 50)
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if on_line:
                on_line(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # on_line raised: the caller went away
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return (None if timed_out.is_set() else code), list(tail)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.rename(tmp, path)


def _layers(count: int) -> str:
    return f"{count} layer" if count == 1 else f"{count} layers"


def _short(digest: str) -> str:
    return digest[:19]
