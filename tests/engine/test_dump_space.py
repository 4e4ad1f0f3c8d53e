"""Telling a full snapshot store from other dump failures, and saying how full it was."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from coldsnap.engine.base import DumpFailed
from coldsnap.engine.dump_space import (
    NEARLY_FULL_BYTES,
    estimate_dump_bytes,
    out_of_space_message,
    ran_out_of_space,
)

GB = 10**9


def test_a_full_store_is_told_by_errno_text_or_free_space() -> None:
    assert ran_out_of_space(OSError(errno.ENOSPC, "No space left on device"), GB)
    cp = DumpFailed("saving the snapshot's filesystem failed: cp: error writing "
                    "'x': No space left on device")
    assert ran_out_of_space(cp, GB)
    silent = DumpFailed("criu dump failed (exit 1)")  # it could not even log why
    assert ran_out_of_space(silent, NEARLY_FULL_BYTES - 1)
    assert not ran_out_of_space(silent, GB)
    assert not ran_out_of_space(silent, -1)  # free space unknown: not guessed
    assert not ran_out_of_space(OSError(errno.EACCES, "Permission denied"), GB)


def test_the_message_names_free_space_and_the_size_needed(tmp_path: Path) -> None:
    message = out_of_space_message(tmp_path, 180_000_000, 512_000_000)
    assert message.startswith("no space left on the snapshot store: 180 MB free, "
                              "the dump needed 512 MB; free space in ")
    assert str(tmp_path) in message and "coldsnap snapshots gc" in message
    low = out_of_space_message(tmp_path, 180_000_000, 100_000_000)  # the estimate fell short
    assert "180 MB free, the dump needed more than that (its processes hold 100 MB)" in low


def test_the_estimate_counts_resident_memory_and_written_files(tmp_path: Path) -> None:
    (tmp_path / "written").write_bytes(b"x" * 1_000_000)
    estimate = estimate_dump_bytes(os.getpid(), tmp_path)
    assert estimate > 1_000_000 + 1_000_000  # this interpreter holds more than a MB
    assert estimate_dump_bytes(2**22 + 1, tmp_path / "gone") == 0  # no such tree
