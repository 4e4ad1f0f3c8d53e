"""An engine's exceptions cross from a host agent to the control plane intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap.engine import DumpFailed, SnapshotDamaged
from coldsnap.server.fleet.host_agent import Outcome


def _raise(exc: BaseException) -> None:
    raise exc


def test_a_value_comes_back() -> None:
    assert Outcome.of(lambda: 42).unwrap() == 42


def test_a_transient_dump_failure_stays_transient() -> None:
    outcome = Outcome.of(lambda: _raise(DumpFailed("criu was killed", "log", transient=True)))
    with pytest.raises(DumpFailed) as info:
        outcome.unwrap()
    assert info.value.transient and info.value.reason == "criu was killed"
    assert "--- criu log (tail) ---" in str(info.value)


def test_an_exception_with_its_own_constructor_keeps_its_fields() -> None:
    damaged = SnapshotDamaged("k1", "pages-1.img", "changed size", Path("/q/k1"))
    with pytest.raises(SnapshotDamaged) as info:
        Outcome.of(lambda: _raise(damaged)).unwrap()
    assert (info.value.key, info.value.file, info.value.quarantined_to) == (
        "k1", "pages-1.img", Path("/q/k1"))
    assert str(info.value) == str(damaged)


def test_an_unpicklable_exception_keeps_its_words() -> None:
    class Local(Exception):  # a local class can't be pickled by reference
        pass

    with pytest.raises(RuntimeError, match="Local: nope"):
        Outcome.of(lambda: _raise(Local("nope"))).unwrap()


def test_a_missing_file_is_named_across_the_call() -> None:
    """An OSError's file is not in its args: it is carried, and the words name it (a
    container whose image root was missing failed "(2, 'No such file or directory')")."""
    def start() -> None:
        open("/nonexistent/base/rootfs")

    with pytest.raises(FileNotFoundError) as caught:
        Outcome.of(start).unwrap()
    assert caught.value.filename == "/nonexistent/base/rootfs"
    assert str(caught.value) == \
        "[Errno 2] No such file or directory: '/nonexistent/base/rootfs'"
