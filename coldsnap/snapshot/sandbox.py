"""Container sandboxes: per-container dirs on a tmpfs, overlay roots, fresh starts.

Everything a container writes lands in its own upper dir under the run dir (a
tmpfs the engine mounts), never on the host. Extra lower layers (image files,
a snapshot's filesystem) are copied into the same tmpfs once: the kernel
refuses (ELOOP) two lower layers on one filesystem where one contains the other,
and the host root is always the bottom layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from coldsnap.snapshot.base import CODE_DIR_ENV

CODE_DIR = "/__coldsnap__/code"  # where ContainerSpec.files appear inside a container
NSINIT = str(Path(__file__).with_name("nsinit.py"))


class ContainerDirs:
    """upper/, work/ and root/ of one container under the run dir."""

    def __init__(self, run_dir: Path, container_id: str) -> None:
        self.base = run_dir / "containers" / container_id
        self.upper = self.base / "upper"
        self.work = self.base / "work"
        self.root = self.base / "root"
        for path in (self.upper, self.work, self.root):
            path.mkdir(parents=True)

    def write_files(self, files: dict[str, bytes]) -> None:
        code = self.upper / CODE_DIR.lstrip("/")
        for rel, data in files.items():
            target = code / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def mount_root(self, layers: list[Path]) -> None:
        """Mount the overlay at root/ from the host side (restores)."""
        from coldsnap.snapshot.nsinit import mount

        lower = ":".join([*map(str, layers), "/"])
        mount(
            "overlay", str(self.root), "overlay", 0,
            f"lowerdir={lower},upperdir={self.upper},workdir={self.work}",
        )  # fmt: skip

    def remove(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def new_container_id() -> str:
    return "cs-" + uuid.uuid4().hex[:10]


def ensure_tmpfs(run_dir: Path) -> bool:
    """Mount a tmpfs on ``run_dir`` unless one is there; True if we mounted it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(run_dir):
        return False
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=700", "coldsnap-run", str(run_dir)], check=True
    )
    return True


class LayerCache:
    """Copies of lower layers on the run dir's tmpfs, made once per source dir."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "layers"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def materialize(self, source: Path) -> Path:
        name = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:20]
        target = self.dir / name
        with self._lock:
            if not target.exists():
                tmp = self.dir / f".{name}-{uuid.uuid4().hex[:6]}"
                subprocess.run(["cp", "-a", str(source), str(tmp)], check=True)
                os.rename(tmp, target)
        return target

    def forget(self, source: Path) -> None:
        name = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:20]
        shutil.rmtree(self.dir / name, ignore_errors=True)


def start_fresh(
    dirs: ContainerDirs,
    argv: list[str],
    env: dict[str, str],
    layers: list[Path],
    masks: list[str],
    netns: Path | None,
    child_fds: tuple[int, ...],
    log_fd: int,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start pid 1 of new pid+mount namespaces; netns None means a new empty one.

    Returns the ``unshare`` process and the host pid of the container's root.
    """
    config = {
        "root": str(dirs.root),
        "upper": str(dirs.upper),
        "work": str(dirs.work),
        "layers": [str(p) for p in layers],
        "masks": masks,
        "argv": argv,
        "env": {**env, CODE_DIR_ENV: CODE_DIR},
        "gpu_devices": [str(p) for p in sorted(Path("/dev").glob("nvidia*")) if p.is_char_device()],
    }
    unshare = ["unshare", "--pid", "--mount", "--fork", "--propagation", "private"]
    if netns is None:
        unshare.insert(1, "--net")
    else:
        unshare = ["nsenter", f"--net={netns}", *unshare]
    proc = subprocess.Popen(
        # -S: nsinit needs only the standard library, so skip site-packages.
        [*unshare, sys.executable, "-I", "-S", NSINIT, json.dumps(config)],
        stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, pass_fds=child_fds,
    )  # fmt: skip
    return proc, _child_pid(proc)


def _child_pid(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except OSError:
            pids = []
        if pids:
            return int(pids[0])
        if proc.poll() is not None:
            raise RuntimeError(f"the container's namespace setup exited with {proc.returncode}")
        time.sleep(0.001)
    proc.kill()
    raise RuntimeError("the container's root process did not appear within 10s")
