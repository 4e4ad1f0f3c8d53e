"""``sb.open(path, mode)``, ``sb.ls``, ``sb.mkdir``, ``sb.rm``: files in a sandbox.

Modal's ``FileIO`` (alpha) mimics ``io.FileIO``; here a file is read whole when it
is opened and written back whole on ``flush()``/``close()``, through processes in
the sandbox (``cat``), so it sees what the sandbox's processes see. Example::

    with sb.open("/tmp/notes.txt", "w") as f:
        f.write("hello")
    print(sb.open("/tmp/notes.txt").read())   # hello
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from coldsnap.sandbox_io import ContainerProcess
from coldsnap.wire.errors import InvalidError

# (argv..., stdin bytes or None) -> (exit code, stdout, stderr): runs in the sandbox.
Run = Callable[..., tuple[int, bytes, bytes]]
MODES = frozenset({"r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b",
                   "a+", "ab+", "a+b"})


class SandboxFileError(InvalidError):
    """A file operation in a sandbox failed (no such file, a directory...)."""


def run_in(exec_: Callable[..., ContainerProcess[Any]]) -> Run:
    """A ``Run`` over a sandbox's ``exec``."""
    def run(*argv: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        process = exec_(*argv, text=False)
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.write_eof()
        out, err = process.stdout.read(), process.stderr.read()
        return process.wait(), out, err
    return run


def _checked(result: tuple[int, bytes, bytes], what: str) -> bytes:
    code, out, err = result
    if code != 0:
        raise SandboxFileError(f"{what} failed in the sandbox: "
                               f"{err.decode(errors='replace').strip() or f'exit {code}'}")
    return out


class FileIO:
    """An open file of a sandbox; ``read``/``readline``/``readlines``/``write``/``seek``/
    ``flush``/``close``, and a context manager."""

    def __init__(self, run: Run, path: str, mode: str) -> None:
        if mode not in MODES:
            raise InvalidError(f"sb.open({path!r}, {mode!r}): mode must be one of "
                               f"{', '.join(sorted(MODES))}")
        self._run = run
        self.path = path
        self.mode = mode
        self._binary = "b" in mode
        self._writable = any(c in mode for c in "wa+")
        self._readable = "r" in mode or "+" in mode
        self._dirty = mode.startswith("w")
        start = b"" if mode.startswith("w") else self._load(missing_ok=mode.startswith("a"))
        self._buffer = io.BytesIO(start)
        if mode.startswith("a"):
            self._buffer.seek(0, io.SEEK_END)
        self.closed = False

    def _load(self, missing_ok: bool) -> bytes:
        code, out, err = self._run("cat", "--", self.path)
        if code != 0 and not missing_ok:
            raise SandboxFileError(f"sb.open({self.path!r}, {self.mode!r}): "
                                   f"{err.decode(errors='replace').strip()}")
        return out if code == 0 else b""

    def _text(self, data: bytes) -> Any:
        return data if self._binary else data.decode()

    def _check(self, readable: bool) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.path}")
        if readable and not self._readable:
            raise io.UnsupportedOperation(f"{self.path} was opened {self.mode!r}: not readable")
        if not readable and not self._writable:
            raise io.UnsupportedOperation(f"{self.path} was opened {self.mode!r}: not writable")

    def read(self, n: int | None = None) -> Any:
        self._check(readable=True)
        return self._text(self._buffer.read(-1 if n is None else n))

    def readline(self) -> Any:
        self._check(readable=True)
        return self._text(self._buffer.readline())

    def readlines(self) -> list[Any]:
        self._check(readable=True)
        return [self._text(line) for line in self._buffer.readlines()]

    def write(self, data: bytes | str) -> None:
        self._check(readable=False)
        if isinstance(data, str):
            data = data.encode()
        self._buffer.write(data)
        self._dirty = True

    def seek(self, offset: int, whence: int = 0) -> None:
        self._buffer.seek(offset, whence)

    def flush(self) -> None:
        if self._dirty and not self.closed:
            _checked(self._run("sh", "-c", 'cat > "$1"', "sh", self.path,
                               stdin=self._buffer.getvalue()), f"writing {self.path}")
            self._dirty = False

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True

    def __enter__(self) -> FileIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ls(run: Run, path: str) -> list[str]:
    return _checked(run("ls", "-A", "--", path), f"ls {path}").decode().splitlines()


def mkdir(run: Run, path: str, parents: bool = False) -> None:
    _checked(run("mkdir", *(["-p"] if parents else []), "--", path), f"mkdir {path}")


def rm(run: Run, path: str, recursive: bool = False) -> None:
    _checked(run("rm", *(["-r"] if recursive else []), "--", path), f"rm {path}")
