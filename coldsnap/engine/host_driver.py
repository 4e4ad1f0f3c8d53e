"""The GPU driver's user-space files in containers: what the NVIDIA container toolkit
does for Docker, for coldsnap's two kinds of root.

A ``from_host()`` root is an overlay whose lowest layer is the host's "/", and an
overlay shows one filesystem: what is mounted on a directory or file below "/" does
not show through. GPU hosts often keep the NVIDIA driver's user-space files that way:
a read-only mount at ``/usr/local/nvidia`` (cloud GPU images, GKE), or single files
bind-mounted by the NVIDIA container toolkit (``libcuda.so.1``, ``nvidia-smi``). The
container then sees the GPU's device nodes but no ``libcuda``, and torch says "Found
no NVIDIA driver on your system".

``from_host()``: the engine copies what those mounts hold into a layer of its own
(``MountsLayer``), which lies just above the host's "/". Driver mounts are those whose
path names NVIDIA's or CUDA's files (``nvidia`` in a component, or a
``libcuda``/``libnvidia`` file), outside /proc, /sys, /dev and /run.

A root of the image's own (``debian_slim()``, ``from_registry()``) has no driver at
all, however the host keeps it: ``LibrariesLayer`` copies the driver's libraries that
the host's dynamic linker knows (``ldconfig -p``: libcuda, libnvidia-*, ...) into
``/usr/lib/x86_64-linux-gnu`` (a directory the image's linker searches without a
cache) and ``nvidia-smi`` into ``/usr/bin``, as the top layer of such roots on a host
with GPUs. ``Image.debian_slim().pip_install("torch")`` with ``gpu=`` then finds the GPU.

Each layer is made once per host and driver, under ``<state dir>/gpu-driver/``, named
by a digest of the files' names, sizes and times; restores get the same layers (a
snapshot's open files must be there again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"
KERNEL_DIRS = ("/proc", "/sys", "/dev", "/run")
DRIVER_FILE_PREFIXES = ("libcuda", "libnvidia", "libnvcuvid", "libnvoptix")
# The driver's libraries by soname (CUDA's toolkit libraries, libcudart & co, are not
# the driver's: images bring their own).
DRIVER_LIBRARY = re.compile(
    r"^(libcuda\.so|libcudadebugger\.so|libnvidia-[\w.-]+\.so|libnvcuvid\.so|libnvoptix\.so)")
IMAGE_LIB_DIR = "/usr/lib/x86_64-linux-gnu"

logger = logging.getLogger(__name__)


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes come octal-escaped."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def is_driver_path(path: str) -> bool:
    if path == "/" or any(path == d or path.startswith(d + "/") for d in KERNEL_DIRS):
        return False
    parts = path.strip("/").split("/")
    return (any("nvidia" in part.lower() for part in parts)
            or parts[-1].startswith(DRIVER_FILE_PREFIXES))


def driver_mounts(mountinfo: str) -> list[str]:
    """The mount points in ``mountinfo``'s text that hold the driver's files, sorted;
    one under another is left out (copying the upper one takes it along)."""
    points = sorted({_unescape(line.split()[4]) for line in mountinfo.splitlines()
                     if len(line.split()) > 4})
    found = [p for p in points if is_driver_path(p)]
    return [p for p in found if not any(p.startswith(q + "/") for q in found if q != p)]


def _entries(top: str) -> Iterable[tuple[str, os.stat_result]]:
    """``top`` and everything below it (not following links), as (path, lstat)."""
    yield top, os.lstat(top)
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        return
    for parent, dirs, files in os.walk(top):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            path = os.path.join(parent, name)
            yield path, os.lstat(path)


def digest(points: list[str]) -> str:
    """What identifies the mounts' contents: names, kinds, sizes, times, link targets."""
    h = hashlib.sha256()
    for top in points:
        for path, st in _entries(top):
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            h.update(f"{path}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{link}\n".encode())
    return h.hexdigest()[:16]


def _copy(points: list[str], layer: Path) -> None:
    """Directories, regular files and links, with their modes; sockets and devices not."""
    for top in points:
        for path, st in _entries(top):
            target = Path(str(layer) + path)
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if stat.S_ISDIR(st.st_mode):
                target.mkdir(exist_ok=True)
                os.chmod(target, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                target.symlink_to(os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(path, target)


def driver_libraries(ldconfig_output: str) -> dict[str, str]:
    """soname -> path of the driver's 64-bit libraries in ``ldconfig -p``'s output; the
    first path of each name, as the dynamic linker takes it."""
    found: dict[str, str] = {}
    for line in ldconfig_output.splitlines():
        name, _, rest = line.strip().partition(" (")
        flags, _, path = rest.partition(") => ")
        if "x86-64" in flags and DRIVER_LIBRARY.match(name) and name not in found:
            found[name] = path.strip()
    return found


def _publish(directory: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """``directory``/``name`` made by ``fill`` in a temporary dir, published by rename;
    older copies of the same kind (another driver's) removed."""
    path = directory / name
    if path.is_dir():
        return path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = name.partition("-")[0]
    for old in directory.glob(f"{kind}-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = directory / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
    tmp.mkdir()
    try:
        fill(tmp)
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.is_dir():  # else another server on this state dir made it first
            raise
    return path


class _OnceLayer:
    """A layer made at its first use and kept for the engine's life (a new driver
    needs a new server: its kernel module does too)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "gpu-driver"
        self._layer: Path | None = None
        self._looked = False
        self._lock = threading.Lock()

    def layer(self) -> Path | None:
        """The layer's path; None where the host has nothing to put in it, or copying
        it failed (said once in the server log: containers then start without it)."""
        with self._lock:
            if not self._looked:
                try:
                    self._layer = self._make()
                except OSError as exc:
                    logger.warning("the GPU driver's files could not be copied for "
                                   "containers (%s): they start without them", exc)
                self._looked = True
            return self._layer

    def _make(self) -> Path | None:
        raise NotImplementedError


class MountsLayer(_OnceLayer):
    """The driver mounts of the host, for ``from_host()`` roots (see the docstring)."""

    def __init__(self, state_dir: Path, mountinfo: str = MOUNTINFO) -> None:
        super().__init__(state_dir)
        self._mountinfo = mountinfo

    def _make(self) -> Path | None:
        try:
            text = Path(self._mountinfo).read_text()
        except OSError:
            return None
        points = driver_mounts(text)
        if not points:
            return None
        return _publish(self.dir, f"mounts-{digest(points)}", lambda tmp: _copy(points, tmp))


def _ldconfig() -> str:
    try:
        return subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                              timeout=30, check=False).stdout
    except OSError:
        return ""


class LibrariesLayer(_OnceLayer):
    """The driver's libraries and ``nvidia-smi``, for roots of an image's own (see the
    docstring)."""

    def __init__(self, state_dir: Path, ldconfig: Callable[[], str] = _ldconfig,
                 smi: str | None = None) -> None:
        super().__init__(state_dir)
        self._ldconfig = ldconfig
        self._smi = smi if smi is not None else shutil.which("nvidia-smi") or ""

    def _make(self) -> Path | None:
        libraries = driver_libraries(self._ldconfig())
        if not libraries:
            return None
        files = {name: os.path.realpath(path) for name, path in libraries.items()
                 if os.path.isfile(path)}
        h = hashlib.sha256()
        for name, real in sorted(files.items()):
            st = os.stat(real)
            h.update(f"{name}\0{real}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        if self._smi:
            h.update(f"smi\0{self._smi}\0{os.stat(self._smi).st_size}".encode())

        def fill(tmp: Path) -> None:
            lib = Path(str(tmp) + IMAGE_LIB_DIR)
            lib.mkdir(mode=0o755, parents=True)
            for name, real in files.items():
                target = lib / os.path.basename(real)
                if not target.exists():
                    shutil.copy2(real, target)
                link = lib / name
                if name != target.name and not os.path.lexists(link):
                    link.symlink_to(target.name)
            if self._smi:
                (tmp / "usr" / "bin").mkdir(mode=0o755)
                shutil.copy2(self._smi, tmp / "usr" / "bin" / "nvidia-smi")
            for parent in (tmp / "usr", tmp / "usr" / "lib", tmp):
                parent.chmod(0o755)

        return _publish(self.dir, f"libraries-{h.hexdigest()[:16]}", fill)
