"""What a build container wrote on another machine, brought to the control plane's image dir.

An image build (images/builder.py) runs each step in a container the fleet places on
some host, and then reads that container's kept upper dir (``ContainerSpec.keep_upper``,
a path in the control plane's image dir) to publish the image. A host agent on another
machine writes that dir on its own disk, so it is shipped: the agent keeps the output
in a staging dir of its own (``BuildOutputs.stage``), packs it once the container
ended (a deterministic tar with owners, modes, xattrs and whiteouts: fs_tar.py), and
the control plane reads the tar in chunks over Ray (``receive_output``), checks its
digest, unpacks it next to the path the builder expects and renames it into place,
so a half-shipped layer is never seen. The agent's copy is deleted afterwards.

Ray, not the shared store: every fleet has Ray and not every fleet has a store, and a
build step's output is not yet an image (the builder uploads the published image,
deduplicated, once every step is done): shipping it through the store would leave
objects that no manifest names.

Whether to ship is ``COLDSNAP_FLEET_SHIP_BUILDS`` (``SHIP_MODES``): ``auto`` ships
when the agent's machine is not the control plane's (``machine_identity``: the
machine id and boot id, and which directory the image dir is), ``always`` ships
from every agent (the tests' simulated hosts share one machine), ``never`` trusts a
shared (NFS) image dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.engine import Container, ContainerSpec
from coldsnap.server.fleet.build_inputs import AgentCall, file_sha256, push_inputs
from coldsnap.server.images.steps import BuildError
from coldsnap.server.remote_store.fs_tar import pack, unpack
from coldsnap.settings import SettingError, Settings

SHIP_MODES = ("auto", "always", "never")
CHUNK_BYTES = 8 << 20  # one Ray call's worth of the tar
TAR = "output.tar"

logger = logging.getLogger(__name__)


class BuildOutputLost(BuildError):
    """What a build container wrote on its host could not be brought to the control plane."""


def ship_mode(settings: Settings) -> str:
    """``settings.fleet_ship_builds``, checked: one of SHIP_MODES."""
    mode = settings.fleet_ship_builds.strip().lower()
    if mode not in SHIP_MODES:
        raise SettingError(f"COLDSNAP_FLEET_SHIP_BUILDS={settings.fleet_ship_builds!r} is not "
                           f"one of {', '.join(SHIP_MODES)} (docs/fleet.md, 'Image builds')")
    return mode


def machine_identity(images: Path) -> str:
    """Which machine this is (its machine id and boot id) and which directory ``images``
    is on it: two processes with the same identity see the same image dir."""
    parts = []
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            parts.append(Path(path).read_text().strip())
        except OSError:
            parts.append("")
    try:
        info = images.stat()
        parts.append(f"{info.st_dev}:{info.st_ino}")
    except OSError:  # not made here yet: so not the control plane's
        parts.append(f"absent {uuid.uuid4().hex}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def ships(mode: str, spec: ContainerSpec, agent_machine: str, here: str) -> bool:
    """Whether the output of ``spec`` (if it keeps any) must travel from its agent."""
    if spec.keep_upper is None or mode == "never":
        return False
    return mode == "always" or agent_machine != here


@dataclasses.dataclass(frozen=True)
class PackedOutput:
    """A build container's output, packed on its host: where, how big, its digest."""

    path: str  # the tar on the agent's host (for error messages)
    size: int
    sha256: str


class BuildOutputs:
    """On an agent: build containers' kept dirs, staged on this host until shipped."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        shutil.rmtree(staging, ignore_errors=True)  # what an agent before this one left
        staging.mkdir(parents=True, exist_ok=True)
        self._containers: dict[str, Container] = {}
        self._lock = threading.Lock()

    def start(self, spec: ContainerSpec,
              start: Callable[[ContainerSpec], Container]) -> Container:
        """``start`` the container of ``spec`` with its kept upper dir in this host's
        staging dir, to be packed once it ended."""
        place = self.staging / spec.container_id
        place.mkdir()
        try:
            container = start(dataclasses.replace(spec, keep_upper=place / "layer"))
        except BaseException:
            shutil.rmtree(place, ignore_errors=True)
            raise
        with self._lock:  # its exit status says whether its output is worth shipping
            self._containers[container.id] = container
        return container

    def pack(self, container_id: str) -> PackedOutput | None:
        """Pack what the ended container kept; None when it failed (the builder reports
        its output, and nothing is shipped). OSError when the engine saved nothing."""
        with self._lock:
            container = self._containers.pop(container_id, None)
        place = self.staging / container_id
        if container is None or container.returncode != 0:
            shutil.rmtree(place, ignore_errors=True)
            return None
        layer, tar = place / "layer", place / TAR
        if not layer.is_dir():
            raise OSError(f"the engine saved no output of build container {container_id} "
                          f"at {layer}")
        pack(layer, tar)
        shutil.rmtree(layer)
        return PackedOutput(str(tar), tar.stat().st_size, file_sha256(tar))

    def read(self, container_id: str, offset: int, size: int) -> bytes:
        with open(self.staging / container_id / TAR, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def drop(self, container_id: str) -> None:
        """Delete this host's copy (shipped, or given up on)."""
        with self._lock:
            self._containers.pop(container_id, None)
        shutil.rmtree(self.staging / container_id, ignore_errors=True)


class ShippedBuilds:
    """The control plane's side for one agent: which build containers' output to ship."""

    def __init__(self, settings: Settings, host: str, agent_machine: str) -> None:
        self._mode = ship_mode(settings)
        self._host = host
        self._agent_machine = agent_machine  # the agent's machine_identity
        self._images = settings.images
        self._scratch = settings.state_dir / "build-input"  # tars on their way out
        self._kept: dict[str, Path] = {}  # container id -> where its output goes

    def start(self, spec: ContainerSpec, call: AgentCall) -> Any:
        """The agent's ``start`` of ``spec`` (its ContainerRecord); for a build container
        on another machine, the image so far sent first (build_inputs.py) and
        ``start_build``, so that its output comes here."""
        here = machine_identity(self._images) if spec.keep_upper is not None else ""
        if spec.keep_upper is None or not ships(self._mode, spec, self._agent_machine, here):
            return call("start", spec)
        push_inputs(spec, self._images, self._scratch, self._host, call)
        record = call("start_build", spec)
        self._kept[record.container_id] = spec.keep_upper
        return record

    def release(self, container_id: str, call: AgentCall, kill: Callable[[], None]) -> None:
        """``kill`` the container there (its cleanups save its output), then fetch that
        output when it is shipped. HostLost as ``kill`` raises it, but BuildOutputLost
        for a build container's."""
        keep, host = self._kept.pop(container_id, None), self._host
        try:
            kill()
        except Exception as exc:
            if keep is None:
                raise
            raise BuildOutputLost(f"build container {container_id}'s output never left host "
                                  f"{host}: {exc}. Deploy again.") from None
        if keep is not None:  # it ran on another machine: its output comes here
            receive_output(host, container_id, keep, call)


def receive_output(host: str, container_id: str, keep: Path, call: AgentCall) -> None:
    """Bring what build container ``container_id`` kept on ``host`` to ``keep``; the
    agent's copy is deleted whatever happens. BuildOutputLost saying what failed."""
    started = time.monotonic()
    packed: PackedOutput | None = None
    try:
        answer = call("pack_output", container_id)
        if answer is None:  # the step failed: the builder says so with its output
            return
        if not isinstance(answer, PackedOutput):
            raise OSError(f"the agent answered {type(answer).__name__}, not a packed output")
        packed = answer
        _fetch_into(keep, packed, lambda offset, size: call("read_output", container_id,
                                                            offset, size))
    except Exception as exc:
        where = f"{packed.path}, {packed.size} bytes" if packed else "not packed yet"
        raise BuildOutputLost(
            f"bringing what build container {container_id} wrote on host {host} ({where}) "
            f"to {keep} failed: {exc}. Check the free space of the image dir here and of "
            "the agent's state dir on that host, then deploy again.") from None
    finally:
        try:
            call("drop_output", container_id)
        except Exception:  # the host is gone: so is its copy, or its next agent clears it
            pass
    logger.info("shipped build output of container %s from host %s: %d bytes in %.1f s, "
                "to %s", container_id, host, packed.size, time.monotonic() - started, keep)


def _fetch_into(keep: Path, packed: PackedOutput, read: Callable[[int, int], object]) -> None:
    """The tar's chunks into a file beside ``keep``, checked, unpacked, renamed to ``keep``."""
    part = keep.with_name(f".{keep.name}.{uuid.uuid4().hex[:6]}.part")
    tar = part.with_name(part.name + ".tar")
    digest = hashlib.sha256()
    try:
        with open(tar, "wb") as handle:
            for offset in range(0, packed.size, CHUNK_BYTES):
                data = read(offset, min(CHUNK_BYTES, packed.size - offset))
                if not isinstance(data, bytes) or not data:
                    raise OSError(f"the agent's tar ended early, at byte {offset}")
                digest.update(data)
                handle.write(data)
        if digest.hexdigest() != packed.sha256:
            raise OSError("the bytes that arrived do not match the digest of the tar")
        unpack(tar, part)
        os.rename(part, keep)
    finally:
        tar.unlink(missing_ok=True)
        shutil.rmtree(part, ignore_errors=True)
