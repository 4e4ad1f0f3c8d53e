"""Spotting an open CUDA context before a snapshot: open /dev/nvidia* files.

CRIU can't dump a process holding NVIDIA device files, and GPU state would not
survive a restore onto another GPU anyway, so the runtime refuses the snapshot
and tells the user which hook opened the device and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEVICE_PREFIX = "/dev/nvidia"
# Which open files count as a GPU context; tests point it at a temp path.
DEVICE_PREFIX_ENV = "COLDSNAP_GPU_DEVICE_PREFIX"


def open_device_files(
    fd_dir: Path = Path("/proc/self/fd"), prefix: str = DEVICE_PREFIX
) -> list[str]:
    """Paths starting with ``prefix`` that this process holds open, sorted, unique."""
    found: set[str] = set()
    try:
        entries = os.listdir(fd_dir)
    except OSError:
        return []
    for entry in entries:
        try:
            target = os.readlink(fd_dir / entry)
        except OSError:  # closed since listdir (the listdir's own fd, for one)
            continue
        if target.startswith(prefix):
            found.add(target)
    return sorted(found)


class CudaContextWatch:
    """Remembers the first stage after which device files were open."""

    def __init__(self, fd_dir: Path = Path("/proc/self/fd"), prefix: str | None = None):
        self.fd_dir = fd_dir
        self.prefix = prefix or os.environ.get(DEVICE_PREFIX_ENV) or DEVICE_PREFIX
        self.first_stage: str | None = None
        self.devices: list[str] = []

    def check(self, stage: str) -> None:
        if self.first_stage is None:
            devices = open_device_files(self.fd_dir, self.prefix)
            if devices:
                self.first_stage, self.devices = stage, devices

    def refusal(self) -> str | None:
        """The snapshot_refused message, or None when the process can be snapshotted."""
        if self.first_stage is None:
            return None
        return (
            f"memory snapshot refused: the process holds an open CUDA context "
            f"({', '.join(self.devices)} open since {self.first_stage}). GPU state can't be "
            "saved in a memory snapshot. Move the GPU work (e.g. model.to('cuda'), "
            "torch.cuda calls) from @coldsnap.enter(snap=True) into an "
            "@coldsnap.enter(snap=False) hook, which runs after restore with the GPU visible. "
            "This container continues without a snapshot."
        )
