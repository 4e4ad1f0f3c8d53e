"""A sandbox process's output kept on the server (pure logic: ProcessState)."""

from __future__ import annotations

from coldsnap.server import sandbox_process
from coldsnap.server.sandbox_process import ProcessState


def test_output_is_read_by_offset() -> None:
    proc = ProcessState()
    assert proc.append("stdout", b"hello ") == 6
    proc.append("stdout", b"world")
    proc.append("stderr", b"oops")
    assert proc.read("stdout", 0) == b"hello world"
    assert proc.read("stdout", 6) == b"world"
    assert proc.read("stderr", 0) == b"oops"
    assert proc.size("stdout") == 11


def test_past_the_room_the_oldest_bytes_go() -> None:
    proc = ProcessState()
    proc.append("stdout", b"0123456789", room=4)
    assert proc.size("stdout") == 10  # offsets still count every byte written
    assert proc.read("stdout", 0) == b"6789"  # a reader behind gets what is left
    assert proc.read("stdout", 8) == b"89"
    assert proc.append("stdout", b"ab", room=0) == -4  # no room at all: nothing kept
    assert proc.read("stdout", 0) == b""
    assert proc.size("stdout") == 12


def test_one_read_answers_at_most_max_read() -> None:
    proc = ProcessState()
    proc.append("stdout", b"x" * (sandbox_process.MAX_READ + 10))
    assert len(proc.read("stdout", 0)) == sandbox_process.MAX_READ
    assert proc.read("stdout", sandbox_process.MAX_READ) == b"x" * 10


def test_finish_ends_both_streams_and_keeps_the_first_code() -> None:
    proc = ProcessState()
    proc.finish(3)
    proc.finish(137)
    assert proc.returncode == 3
    assert proc.ended == {"stdout", "stderr"}
