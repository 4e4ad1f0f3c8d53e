"""The host's GPUs: which ones a container sees, and GPU memory snapshots.

Device selection: ``host_gpus()`` reads the NVIDIA driver's list of this host's GPUs;
``select_gpus`` picks the ones a function's ``gpu=`` asks for, and the container gets
them as ``CUDA_VISIBLE_DEVICES`` (their UUIDs). Containers share GPUs: a GPU is not
reserved for one container.

GPU memory snapshots go through NVIDIA's CUDA checkpoint API (driver >= 550).

Before ``criu dump``, ``lock`` + ``checkpoint`` move each CUDA process's device
state into its host memory and close its /dev/nvidia* fds, so CRIU sees a plain
process; after ``criu restore``, ``restore`` + ``unlock`` put the state back on
a GPU. Called from the server with the container processes' host pids.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from pathlib import Path

from coldsnap.wire.gpus import GpuRequest

CUDA_SUCCESS = 0
# The driver's one directory per GPU; tests point it at a directory of fake ones.
GPU_INFO_DIR_ENV = "COLDSNAP_GPU_INFO_DIR"
GPU_INFO_DIR = "/proc/driver/nvidia/gpus"


@dataclasses.dataclass(frozen=True)
class HostGpu:
    """One GPU of this host, as the NVIDIA driver names it."""

    name: str  # "NVIDIA H100 80GB HBM3"
    uuid: str  # "GPU-5c1e...": what CUDA_VISIBLE_DEVICES takes
    bus: str = ""  # "0000:1b:00.0": the driver's (and nvidia-smi's) order
    minor: int = -1  # /dev/nvidia<minor>


class GpuUnavailable(RuntimeError):
    """This host has no GPUs that meet a function's ``gpu=``; the message names its GPUs."""


def host_gpus(info_dir: str | None = None) -> list[HostGpu]:
    """This host's GPUs in bus order ([] without an NVIDIA driver)."""
    root = Path(info_dir or os.environ.get(GPU_INFO_DIR_ENV) or GPU_INFO_DIR)
    gpus = []
    for entry in sorted(root.glob("*/information")):
        try:
            fields = _info_fields(entry.read_text())
        except OSError:
            continue
        if fields.get("GPU Excluded", "No") != "No" or "GPU UUID" not in fields:
            continue
        minor = fields.get("Device Minor", "-1")
        gpus.append(HostGpu(name=fields.get("Model", "unknown GPU"), uuid=fields["GPU UUID"],
                            bus=entry.parent.name, minor=int(minor) if minor.isdigit() else -1))
    return gpus


def _info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def visible_to_server(gpus: list[HostGpu], cuda_visible_devices: str | None) -> list[HostGpu]:
    """The GPUs the server may hand out: all, or those its own CUDA_VISIBLE_DEVICES names
    (by index in bus order or by UUID)."""
    if cuda_visible_devices is None:
        return gpus
    names = [n.strip() for n in cuda_visible_devices.split(",") if n.strip()]
    return [gpu for index, gpu in enumerate(gpus)
            if str(index) in names or any(gpu.uuid.startswith(n) for n in names
                                          if n.startswith("GPU-"))]


def select_gpus(requests: tuple[GpuRequest, ...], gpus: list[HostGpu]) -> list[HostGpu]:
    """The GPUs a container gets: the first request (in order of preference) this host
    can meet, its first ``count`` matching GPUs. GpuUnavailable names the host's GPUs."""
    for request in requests:
        matching = [gpu for gpu in gpus if request.matches(gpu.name)]
        if len(matching) >= request.count:
            return matching[:request.count]
    asked = ", ".join(f'"{r}"' for r in requests)
    have = ", ".join(f"{index}: {gpu.name}" for index, gpu in enumerate(gpus)) or "none"
    raise GpuUnavailable(
        f"gpu={asked} can't be met on this host: its GPUs are {have}. Ask for a type it "
        'has (or "any"), add one as a fallback (gpu=["H100", "any"]), or run the server '
        "on a host with that GPU")


def cuda_visible_devices(requests: tuple[GpuRequest, ...],
                         server_env: str | None = None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a container whose function asked for ``requests``:
    the chosen GPUs' UUIDs. None: leave it as the server's (no gpu=, or a host without
    GPUs, where GPU functions run on the CPU)."""
    if not requests:  # most functions: no need to look at the host (every boot asks)
        return None
    gpus = visible_to_server(host_gpus(), server_env)
    if not gpus:
        return None
    return ",".join(gpu.uuid for gpu in select_gpus(requests, gpus))


class GpuCheckpointError(RuntimeError):
    pass


class CudaCheckpoint:
    def __init__(self, library: str = "libcuda.so.1") -> None:
        try:
            self.cuda = ctypes.CDLL(library)
        except OSError as exc:
            raise GpuCheckpointError(f"can't load {library}: {exc} (no NVIDIA driver?)") from exc
        for name in ("cuCheckpointProcessLock", "cuCheckpointProcessCheckpoint",
                     "cuCheckpointProcessRestore", "cuCheckpointProcessUnlock"):
            if not hasattr(self.cuda, name):
                raise GpuCheckpointError(
                    f"the driver has no {name}: GPU snapshots need NVIDIA driver 550 or newer"
                )
        self._call("cuInit", 0)

    def _call(self, name: str, *args: object) -> None:
        code = getattr(self.cuda, name)(*args)
        if code != CUDA_SUCCESS:
            raise GpuCheckpointError(f"{name}{args} returned CUDA error {code}")

    def suspend(self, pids: list[int]) -> None:
        """Lock and checkpoint every pid: GPU state moves to host memory."""
        for pid in pids:
            self._call("cuCheckpointProcessLock", pid, None)
        for pid in pids:
            self._call("cuCheckpointProcessCheckpoint", pid, None)

    def resume(self, pids: list[int]) -> None:
        """Restore and unlock every pid: GPU state goes back to the device."""
        for pid in pids:
            self._call("cuCheckpointProcessRestore", pid, None)
        for pid in pids:
            self._call("cuCheckpointProcessUnlock", pid, None)


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (host pids)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return pids


def cuda_pids(root: int) -> list[int]:
    """The processes of the tree that hold a GPU device open."""
    holders = []
    for pid in tree_pids(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/nvidia"):
                    holders.append(pid)
                    break
            except OSError:
                continue
    return holders


def ns_pid(pid: int) -> int:
    """The pid of host pid ``pid`` inside its own (innermost) pid namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid


def host_pids_for(root: int, namespace_pids: list[int]) -> list[int]:
    """Host pids of the tree's processes whose in-namespace pid is listed.

    CRIU restores processes with their in-namespace pids, so the pids recorded
    at dump time name the same processes after a restore.
    """
    wanted = set(namespace_pids)
    return [pid for pid in tree_pids(root) if ns_pid(pid) in wanted]
