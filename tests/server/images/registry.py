"""A real local registry (Debian's ``docker-registry``) and images the tests build and push.

``LocalRegistry`` runs the registry on 127.0.0.1 at a free port with its storage
and config in a temp dir; ``push_image`` builds a small OCI image from files with
umoci (a static busybox as its shell, the files given, an Env and a WorkingDir)
and copies it there with skopeo. Nothing comes from the internet.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

TOOLS = ("docker-registry", "skopeo", "umoci")
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: runs in any image


def missing() -> str | None:
    """Why these tests can't run here, or None."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not installed: run scripts/setup.sh as root"
    if not BUSYBOX.is_file():
        return "busybox-static not installed: run scripts/setup.sh as root"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1; ``auth="silly"`` makes it ask for credentials."""

    def __init__(self, root: Path, auth: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
            f"    rootdirectory: {root / 'data'}", "http:", f"  addr: {self.address}",
        ]  # fmt: skip
        if auth == "silly":  # any Authorization header will do, but none is sent
            lines += ["auth:", "  silly:", f"    realm: http://{self.address}/token",
                      "    service: coldsnap-test"]
        self.config = root / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 20.0) -> LocalRegistry:
        with open(self.root / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer in {timeout_s}s: {self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return (self.root / "registry.log").read_text(errors="replace")[-2000:]

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # 401 from a registry that wants credentials: it is up
        except OSError:
            return False


@dataclasses.dataclass
class ImageContent:
    """What an image holds: layers of files (path -> text, mode) and its config."""

    layers: list[dict[str, tuple[str, int]]]
    env: dict[str, str]
    workdir: str = "/"
    cmd: tuple[str, ...] = ("/bin/sh",)
    symlinks: dict[str, str] = dataclasses.field(default_factory=dict)  # in the first layer
    owners: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    deleted: tuple[str, ...] = ()  # whited out by a last layer


def push_image(registry: LocalRegistry, name: str, tag: str, content: ImageContent,
               work: Path) -> str:
    """Build ``content`` as an OCI image and push it as ``name:tag``; its manifest digest."""
    layout = work / "layout"
    _run("umoci", "init", "--layout", str(layout))
    image = f"{layout}:{tag}"
    _run("umoci", "new", "--image", image)
    for number, files in enumerate(content.layers):
        source = work / f"layer-{number}"
        _write_files(source, files, content, first=number == 0)
        _run("umoci", "insert", "--image", image, str(source), "/")
    for path in content.deleted:
        _run("umoci", "insert", "--image", image, "--whiteout", path)
    config = ["--config.workingdir", content.workdir]
    for key, value in content.env.items():
        config += ["--config.env", f"{key}={value}"]
    for arg in content.cmd:
        config += ["--config.cmd", arg]
    _run("umoci", "config", "--image", image, *config)
    digest_file = work / "digest"
    _run("skopeo", "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file),
         f"oci:{image}", f"docker://{registry.address}/{name}:{tag}")
    return digest_file.read_text().strip()


def _write_files(source: Path, files: dict[str, tuple[str, int]], content: ImageContent,
                 first: bool) -> None:
    source.mkdir(parents=True)
    if first:
        (source / "bin").mkdir()
        shutil.copy2(BUSYBOX, source / "bin" / "busybox")
        for applet in ("sh", "ls", "cat"):
            os.symlink("busybox", source / "bin" / applet)
        for link, target in content.symlinks.items():
            (source / link.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, source / link.lstrip("/"))
    for path, (text, mode) in files.items():
        target = source / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
        if path in content.owners:
            os.chown(target, *content.owners[path])


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")
