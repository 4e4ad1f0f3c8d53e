"""GPU memory snapshots through NVIDIA's CUDA checkpoint API (driver >= 550).

Before ``criu dump``, ``lock`` + ``checkpoint`` move each CUDA process's device
state into its host memory and close its /dev/nvidia* fds, so CRIU sees a plain
process; after ``criu restore``, ``restore`` + ``unlock`` put the state back on
a GPU. Called from the server with the container processes' host pids.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

CUDA_SUCCESS = 0


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
