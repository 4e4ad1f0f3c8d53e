"""What a build container on another machine reads: the image built so far, sent there.

A build step's container sees the layers of the steps before it (and, on a
``from_host()`` image, the venv that ``pip_install`` made) at their paths in the
control plane's image dir. An image being built is not published yet, so an agent
on another machine can't fetch it from the shared store (images/from_store.py): the
control plane sends it what it lacks of those dirs before the container starts
(``push_inputs``), each as a deterministic tar (fs_tar.py) in chunks over Ray, which
the agent (``BuildInputs``) checks, unpacks beside the path and renames into place.
Only build containers whose output is shipped (build_output.py) send their inputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.engine import ContainerSpec
from coldsnap.server.fleet.bridge import HostLost
from coldsnap.server.images.steps import BuildError
from coldsnap.server.remote_store.fs_tar import pack, unpack

CHUNK_BYTES = 8 << 20

AgentCall = Callable[..., Any]  # (agent method, *args) -> its answer


class BuildInputLost(BuildError):
    """The image built so far could not be sent to the host of a build container."""


def inputs_of(spec: ContainerSpec, images: Path) -> list[Path]:
    """The dirs under ``images`` that a build container of ``spec`` reads: its lower
    layers, and the venv first on its PATH. Not coldsnap's runtime layer: each agent
    makes its own (images/from_store.py)."""
    paths = [path for path in spec.layers if path.is_relative_to(images)
             and path.relative_to(images).parts[:1] != ("runtime",)]
    first = Path(spec.env.get("PATH", "").split(":")[0])
    if first.name == "bin" and first.parent.name == "venv" and first.is_relative_to(images):
        paths.append(first.parent)
    return paths


def push_inputs(spec: ContainerSpec, images: Path, scratch: Path, host: str,
                call: AgentCall) -> list[str]:
    """Send the agent on ``host`` the inputs of ``spec`` it lacks; the paths sent."""
    paths = [str(path) for path in inputs_of(spec, images)]
    lacking: list[str] = call("lacks_paths", paths) if paths else []
    for path in lacking:
        send_tree(Path(path), path, scratch, host, call)
    return lacking


def send_tree(source: Path, target: str, scratch: Path, host: str, call: AgentCall) -> None:
    """Pack ``source`` here and have the agent unpack it at ``target``. BuildInputLost
    saying what failed; HostLost as the agent's calls raise it."""
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="build-input-", suffix=".tar", dir=scratch)
    os.close(handle)
    tar, sent = Path(name), uuid.uuid4().hex
    try:
        pack(source, tar)
        size, digest = tar.stat().st_size, file_sha256(tar)
        with open(tar, "rb") as stream:
            for offset in range(0, size, CHUNK_BYTES):
                call("receive_input", sent, offset, stream.read(CHUNK_BYTES))
        call("place_input", sent, target, size, digest)
    except HostLost:  # the fleet places the container on another host
        raise
    except Exception as exc:
        size = tar.stat().st_size if tar.exists() else 0
        raise BuildInputLost(
            f"sending {source} ({size} bytes packed) to host {host} for a build container "
            f"failed: {exc}. Check the free space there, then deploy again.") from None
    finally:
        tar.unlink(missing_ok=True)


class BuildInputs:
    """On an agent: the dirs the control plane sends for build containers."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        shutil.rmtree(staging, ignore_errors=True)  # what an agent before this one left
        staging.mkdir(parents=True, exist_ok=True)

    def lacks(self, paths: list[str]) -> list[str]:
        return [path for path in paths if not os.path.lexists(path)]

    def receive(self, sent: str, offset: int, data: bytes) -> None:
        tar = self._tar(sent)
        with open(tar, "r+b" if tar.exists() else "wb") as handle:
            handle.seek(offset)
            handle.write(data)

    def place(self, sent: str, target: str, size: int, sha256: str) -> None:
        """Check the tar ``sent`` and unpack it at ``target``, by rename (a build running
        beside this one may have placed it first: then its copy stays)."""
        tar, path = self._tar(sent), Path(target)
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.part")
        try:
            _make_private_parents(path)
            if tar.stat().st_size != size or file_sha256(tar) != sha256:
                raise OSError(f"the {size} bytes sent do not match their digest")
            unpack(tar, part)
            try:
                os.rename(part, path)
            except OSError:
                if not path.is_dir():
                    raise
        finally:
            tar.unlink(missing_ok=True)
            shutil.rmtree(part, ignore_errors=True)

    def _tar(self, sent: str) -> Path:
        if not sent.isalnum():  # a name the control plane made: never a path
            raise ValueError(f"bad input name {sent!r}")
        return self.staging / f"{sent}.tar"


def _make_private_parents(path: Path) -> None:
    """The missing dirs above ``path``, 0700 as an image's dir is (only root reads it)."""
    missing = [parent for parent in path.parents if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(mode=0o700, exist_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
