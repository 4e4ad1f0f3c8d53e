"""A checkpoint of the criu engine: a running container into a published snapshot.

The tree's GPU state goes to host memory first (CUDA's checkpoint API), then CRIU
dumps the tree (criu.dump, which kills it) with the network namespace and the
volumes' mounts external, then the container's upper dir is copied as the
snapshot's filesystem layer, and the whole is published in the store. A dump that
failed because the disk filled up is transient (space can be freed); any other
failure of the dump is the snapshot's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coldsnap.engine import criu
from coldsnap.engine.base import Container, DumpFailed, SnapshotInfo
from coldsnap.engine.dump_space import (
    estimate_dump_bytes,
    free_bytes,
    out_of_space_message,
    ran_out_of_space,
)
from coldsnap.engine.gpu import CudaCheckpoint, GpuCheckpointError, cuda_pids, ns_pid
from coldsnap.engine.sandbox import ContainerDirs
from coldsnap.engine.store import SnapshotStore
from coldsnap.engine.userns import shift_tree
from coldsnap.settings import Settings


def checkpoint_container(
    store: SnapshotStore, settings: Settings, facts: dict[str, object],
    container: Container, dirs: ContainerDirs, key: str, labels: dict[str, str],
    warnings: list[dict[str, str]],
) -> SnapshotInfo:
    """Dump ``container`` (whose dirs are ``dirs``) as snapshot ``key`` of ``store``.
    DumpFailed saying why (``transient`` when the disk is full); the container is
    gone either way."""
    staging: Path | None = None
    needed = 0
    try:
        needed = estimate_dump_bytes(container.pid, dirs.upper)  # the dump kills the tree
        staging = store.staging_dir(key)
        images = staging / "images"
        images.mkdir()
        netns_inode = os.stat(f"/proc/{container.pid}/ns/net").st_ino
        pipes = {
            "ctrl_in": os.fstat(container.ctrl_in.fileno()).st_ino,
            "ctrl_out": os.fstat(container.ctrl_out.fileno()).st_ino,
            "logs": os.fstat(container.logs.fileno()).st_ino,
        }
        gpu_pids = suspend_gpu(container.pid)
        volumes = criu.volume_keys(dirs.volumes)
        dump_s = criu.dump(
            settings.criu_path, container.pid, images, netns_inode,
            settings.dump_timeout_s, userns=dirs.ids is not None, volumes=volumes,
        )  # fmt: skip
        container.wait(10)
        copy = subprocess.run(
            ["cp", "-a", str(dirs.upper), str(staging / "fs")], capture_output=True, text=True
        )
        if copy.returncode != 0:
            raise DumpFailed(f"saving the snapshot's filesystem failed: {copy.stderr.strip()}")
        if dirs.ids is not None:  # layers keep the container's own ids (userns.py)
            shift_tree(staging / "fs", -dirs.ids.base)
        return store.publish(
            staging, key,
            {"dump_s": dump_s, "criu_version": facts["criu"], "host": facts,
             "pipes": pipes, "labels": labels, "gpu_processes": gpu_pids,
             "volumes": volumes,  # mount paths only: never a volume's name or files
             "warnings": warnings},
        )  # fmt: skip
    except (DumpFailed, OSError, GpuCheckpointError) as exc:
        free_at_failure = free_bytes(store.root)
        if staging is not None:
            store.discard(staging)
        if ran_out_of_space(exc, free_at_failure):  # transient: space can be freed
            message = out_of_space_message(store.root, free_bytes(store.root), needed)
            log_tail = exc.log_tail if isinstance(exc, DumpFailed) else ""
            raise DumpFailed(message, log_tail, transient=True) from exc
        if not isinstance(exc, DumpFailed):
            raise DumpFailed(f"checkpoint of {container.id} failed: {exc}") from exc
        raise
    finally:
        container.kill()


def suspend_gpu(root: int) -> list[int]:
    """Move GPU state to host memory before a dump; returns the in-namespace pids of
    the processes that had any ([] when none uses a GPU)."""
    pids = cuda_pids(root)
    if pids:
        CudaCheckpoint().suspend(pids)
    return [ns_pid(pid) for pid in pids]
