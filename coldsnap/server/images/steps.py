"""The steps of an image build: a venv, pip installs, copied files, container runs.

Each step either succeeds or raises BuildError, whose message names the failing
command, shows the tail of its output and says what to do. Output of children
(pip, build containers) is read on a thread and handed to ``progress`` on the
caller's thread, so a progress callback that raises (a client that went away,
Ctrl-C) interrupts the build and the child is killed.
"""

from __future__ import annotations

import collections
import os
import queue
import shlex
import shutil
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from coldsnap.engine.base import Container, ContainerSpec, Engine
from coldsnap.wire.image_spec import Ignore

Progress = Callable[[str], None]
TAIL_LINES = 20
TICK_S = 5.0  # how often a long pip install reports that it is still going
BUILD_TIMEOUT_S = 3600.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP_MARK = "coldsnap: step "
# Runs each command in its own shell (like Dockerfile RUN lines) and marks it in
# the log, so a failure can name the command that failed.
RUN_SCRIPT = (
    'n=0; for c in "$@"; do n=$((n+1)); echo "' + STEP_MARK + '$n: $c"; '
    '/bin/sh -c "$c" || exit $?; done'
)


class BuildError(Exception):
    """An image build failed; the message has the command, its log tail and the fix."""


def format_failure(what: str, command: str, tail: list[str], fix: str) -> str:
    shown = "\n".join(tail) or "(no output)"
    banner = f"--- last {len(tail)} lines of its output ---"
    return f"{what}\n  command: {command}\n{banner}\n{shown}\n{fix}"


class _Output:
    """A child's output lines, read on a thread, logged and kept as a tail."""

    _EOF = None

    def __init__(self, stream: IO[bytes], log: Path | None) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.last = ""
        self._log = open(log, "a") if log else None  # closed by follow()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError):
            pass  # the stream was closed under us: the child is gone
        self.lines.put(self._EOF)

    def follow(
        self,
        poll: Callable[[], int | None],
        on_line: Callable[[str], None],
        on_tick: Callable[[float, str], None] | None = None,
        timeout_s: float = BUILD_TIMEOUT_S,
    ) -> int | None:
        """Pump lines until the child exits and its output ends; None on timeout."""
        start = last_tick = time.monotonic()
        exited_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                if now - start > timeout_s:
                    return None
                if on_tick and now - last_tick >= TICK_S:
                    last_tick = now
                    on_tick(now - start, self.last)
                try:
                    line = self.lines.get(timeout=0.2)
                except queue.Empty:
                    code = poll()
                    # A grandchild may hold the pipe open after the child exits: give
                    # it a moment, then stop reading.
                    if code is not None:
                        exited_at = exited_at or now
                        if now - exited_at > 2.0:
                            return code
                    continue
                if line is self._EOF:
                    while (code := poll()) is None:
                        if time.monotonic() - start > timeout_s:
                            return None
                        time.sleep(0.05)
                    return code
                self.tail.append(line)
                self.last = line or self.last
                if self._log:
                    self._log.write(line + "\n")
                on_line(line)
        finally:
            if self._log:
                self._log.close()


# -- the venv ----------------------------------------------------------------------


def make_venv(venv: Path) -> Path:
    """A venv from the host's base interpreter that also sees the host's packages.

    The host's site-packages are added by a .pth that calls site.addsitedir, so
    their own .pth files run too (coldsnap's editable install needs that); they
    come after the venv's own site-packages, so the image's packages win.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    command = [base, "-m", "venv", "--without-pip", str(venv)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(format_failure(
            "creating the image's virtual environment failed.", shlex.join(command),
            (result.stdout + result.stderr).splitlines()[-TAIL_LINES:],
            "Check that the server's Python has the venv module (apt-get install python3-venv).",
        ))  # fmt: skip
    (_own_site_packages(venv) / HOST_PTH).write_text(_host_pth(venv))
    return venv / "bin" / "python"


HOST_PTH = "zz-coldsnap-host.pth"


def venv_sees_this_host(venv: Path) -> bool:
    """True when ``venv`` adds this process's site-packages (so its coldsnap too)."""
    try:
        return (_own_site_packages(venv) / HOST_PTH).read_text() == _host_pth(venv)
    except OSError:
        return False


def _own_site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages"


def _host_pth(venv: Path) -> str:
    own = _own_site_packages(venv)
    host = [p for p in site.getsitepackages() if Path(p).is_dir() and Path(p) != own]
    return "".join(f"import site; site.addsitedir({p!r})\n" for p in host)


def run_logged(command: list[str], env: dict[str, str], log: Path,
               tick: Callable[[float, str], None]) -> tuple[int | None, list[str]]:
    """Run a host command to its end, its output into ``log`` and ``tick``ed now and
    then; (exit status, or None on timeout; the tail of its output). Killed if the
    caller is interrupted (``tick`` raised)."""
    with open(log, "a") as handle:
        handle.write(f"$ {shlex.join(command)}\n")
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    output = _Output(proc.stdout, log)
    try:
        code = output.follow(proc.poll, lambda line: None, tick)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    return code, list(output.tail)


def pip_install(python: Path, packages: list[str], log: Path, progress: Progress) -> None:
    """``pip install`` into the venv of ``python`` with the host's pip and pip config."""
    command = [
        sys.executable, "-m", "pip", "--python", str(python), "install",
        "--no-input", "--progress-bar", "off", *packages,
    ]  # fmt: skip
    names = " ".join(packages)
    progress(f"Installing {names} ...")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1"}

    def tick(elapsed: float, last: str) -> None:
        progress(f"  pip install {names}: {elapsed:.0f}s  {last.strip()[:120]}")

    started = time.monotonic()
    code, tail = run_logged(command, env, log, tick)
    if code != 0:
        what = "timed out" if code is None else f"failed (exit status {code})"
        raise BuildError(format_failure(
            f"pip install {what} while building the image.", shlex.join(command), tail,
            "Check the names and versions in Image.pip_install(...): they must exist on the "
            f"index pip is configured with (`pip config list`). Then deploy again. Full log: {log}",
        ))  # fmt: skip
    done = next((x for x in reversed(tail) if x.startswith("Successfully installed")), "")
    progress(f"Installed {names} in {time.monotonic() - started:.1f}s. {done}".rstrip())


# -- files ---------------------------------------------------------------------------

# Left out of copied trees, and of their hash: Python rewrites bytecode caches at will.
SKIPPED_NAMES = ("__pycache__",)


def add_local(layer: Path, local: Path, remote: str, ignore: Ignore | None = None) -> None:
    """Copy a file or a tree to ``remote`` inside ``layer`` (the container's view of /),
    without what ``ignore`` leaves out of a tree."""
    target = layer / remote.lstrip("/")
    _make_parents(layer, target.parent)
    if local.is_dir():
        shutil.copytree(local, target, symlinks=True, dirs_exist_ok=True,
                        ignore=_left_out(local, ignore or Ignore()))
    else:
        shutil.copy2(local, target)


def _left_out(root: Path, ignore: Ignore) -> Callable[[str, list[str]], set[str]]:
    """copytree's ``ignore``: the names in a directory to skip."""
    def skip(directory: str, names: list[str]) -> set[str]:
        here = Path(directory).relative_to(root)
        return {name for name in names if name in SKIPPED_NAMES or (
            ignore(str(here / name)) and (ignore.prunes_directories
                                          or not (Path(directory) / name).is_dir()))}
    return skip


def _make_parents(layer: Path, directory: Path) -> None:
    # A directory in an upper layer replaces the host's attributes (mode, owner):
    # copy them from the host where it has that directory, so /root stays 0700.
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir()
        host = Path("/") / path.relative_to(layer)
        if host.is_dir():
            shutil.copystat(host, path)
            info = host.stat()
            os.chown(path, info.st_uid, info.st_gid)


# -- containers ----------------------------------------------------------------------


def run_container(
    engine: Engine, spec: ContainerSpec, what: str, progress: Progress, log: Path
) -> tuple[int | None, list[str], str]:
    """Run ``spec`` to the end, echoing its output; (exit status, tail, last step mark).

    The container is closed (so ``keep_upper`` is saved) whatever happens.
    """
    progress(what)
    try:
        container: Container = engine.start(spec)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        raise BuildError(
            f"starting a build container failed: {exc}. Run `coldsnap doctor` to check the "
            "engine, then deploy again."
        ) from exc
    for stream in (container.ctrl_in, container.ctrl_out):
        stream.close()  # build containers don't speak the control protocol
    output = _Output(container.logs, log)
    steps: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith(STEP_MARK):
            steps.append(line[len(STEP_MARK) :].split(": ", 1)[-1])
        progress(f"  | {line}")

    try:
        code = output.follow(container.poll, on_line)
    finally:
        if container.poll() is None:
            container.kill()
        container.close()
    return code, list(output.tail), steps[-1] if steps else ""


def strip_masks(layer: Path, masks: list[Path]) -> None:
    """Drop the empty directories the engine seeds over its private dirs from a kept
    upper dir (and their parents, if emptied): in a lower layer they would only
    clutter the image and override the host's directory modes (e.g. /tmp's)."""
    for mask in sorted(masks, key=lambda p: len(p.parts), reverse=True):
        path = layer / str(mask).lstrip("/")
        while path != layer and path.is_dir() and not path.is_symlink():
            if any(path.iterdir()):
                break
            path.rmdir()
            path = path.parent


def run_commands_spec(
    commands: list[str], env: dict[str, str], layers: list[Path], keep: Path
) -> ContainerSpec:
    return ContainerSpec(
        argv=["/bin/sh", "-c", RUN_SCRIPT, "coldsnap-run-commands", *commands],
        env=env,
        layers=layers,
        keep_upper=keep,
    )
