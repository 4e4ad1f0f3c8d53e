"""The table of spawned calls over a real SQLite file: what a `get` finds after the
server that spawned a call is gone, and after its result expired; `map` keeps none."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from coldsnap.server.calls import Call, Outcome
from coldsnap.server.errors import ApiError
from coldsnap.server.spawned import INLINE_RESULT_BYTES, SpawnedCalls
from coldsnap.server.state import StateDB
from coldsnap.wire.errors import (
    CONTAINER_DIED,
    EXPIRED,
    INTERRUPTED,
    NOT_FOUND,
    REMOTE,
    UNAVAILABLE,
)
from tests.conftest import APPS, ServerHandle


def _table(tmp_path: Path, ttl_s: float = 3600.0) -> tuple[StateDB, SpawnedCalls]:
    db = StateDB(tmp_path / "state.db")
    return db, SpawnedCalls(db, tmp_path / "call-results", ttl_s)


def _reopen(tmp_path: Path, db: StateDB, ttl_s: float = 3600.0) -> SpawnedCalls:
    """As a server starting again on the same state dir does."""
    db.close()
    _, table = _table(tmp_path, ttl_s)
    table.recover()
    return table


def _spawned(table: SpawnedCalls) -> Call:
    call = Call("app", "f", None, b"args", timeout_s=60, retries=0)
    table.add(call)
    return call


def test_a_result_small_or_large_outlives_the_server(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    small, large, raised = _spawned(table), _spawned(table), _spawned(table)
    small.add_log("[cs-1] printed")
    small.finish(Outcome(ok=True, blob=b"small"))
    large.finish(Outcome(ok=True, blob=b"x" * (INLINE_RESULT_BYTES + 1)))
    raised.fail(ApiError(REMOTE, "app/f raised an exception", b"pickled exception"))
    assert (tmp_path / "call-results" / large.id).stat().st_size == INLINE_RESULT_BYTES + 1
    table = _reopen(tmp_path, db)
    found = table.get(small.id)
    assert found.done.is_set() and found.outcome == Outcome(ok=True, blob=b"small")
    assert found.logs == ["[cs-1] printed"]
    assert table.get(small.id).outcome == found.outcome  # a result can be fetched again
    assert table.get(large.id).outcome == Outcome(ok=True, blob=b"x" * (INLINE_RESULT_BYTES + 1))
    error = table.get(raised.id).outcome.error  # type: ignore[union-attr]
    assert error is not None
    assert (error.kind, error.message, error.blob) == (REMOTE, "app/f raised an exception",
                                                       b"pickled exception")


def test_a_call_the_server_died_during_is_interrupted(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    call = _spawned(table)  # never finishes: the server is killed
    table = _reopen(tmp_path, db)
    with pytest.raises(ApiError) as info:
        table.get(call.id)
    assert info.value.kind == INTERRUPTED
    assert info.value.message.startswith(
        f"call {call.id} to app/f was interrupted: the server stopped while it was queued or "
        "running (noticed when the server started again at ")
    assert info.value.message.endswith("UTC); it has no result: call app/f again")


def test_calls_a_clean_stop_ends_are_interrupted_and_results_kept(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    finished_in_grace, queued, killed = _spawned(table), _spawned(table), _spawned(table)
    table.stopping()
    finished_in_grace.finish(Outcome(ok=True, blob=b"made it"))
    queued.fail(ApiError(UNAVAILABLE, "the coldsnap server is shutting down"))
    killed.fail(ApiError(CONTAINER_DIED, "the container died"))
    # Who waited in this server heard the error itself.
    assert queued.outcome is not None and queued.outcome.error is not None
    assert queued.outcome.error.kind == UNAVAILABLE
    table = _reopen(tmp_path, db)
    assert table.get(finished_in_grace.id).outcome == Outcome(ok=True, blob=b"made it")
    # The stop's own error says nothing more than "stopped"; a death during it does.
    with pytest.raises(ApiError, match=r"was interrupted: the server was stopped at [^(]* "
                       r"UTC; it has no result"):
        table.get(queued.id)
    with pytest.raises(ApiError, match=r"was interrupted: the server was stopped at .* UTC "
                       r"\(the container died\)"):
        table.get(killed.id)


def test_an_expired_result_says_so_then_is_forgotten(tmp_path: Path) -> None:
    db, table = _table(tmp_path, ttl_s=0.3)
    call = _spawned(table)
    call.finish(Outcome(ok=True, blob=b"y" * (INLINE_RESULT_BYTES + 1)))
    assert table.get(call.id).outcome is not None
    time.sleep(0.4)
    with pytest.raises(ApiError) as info:
        table.get(call.id)  # not swept yet: expired all the same
    assert info.value.kind == EXPIRED
    assert (f"the result of call {call.id} to app/f expired: it ended at " in
            info.value.message)
    assert info.value.message.endswith("UTC and results are kept 0.3 s "
                                       "(COLDSNAP_CALL_RESULT_TTL_S); call app/f again")
    table = _reopen(tmp_path, db, ttl_s=0.3)  # the start sweeps: the file goes
    assert list((tmp_path / "call-results").iterdir()) == []
    with pytest.raises(ApiError) as info:
        table.get(call.id)
    assert info.value.kind == EXPIRED
    time.sleep(0.4)
    db2 = StateDB(tmp_path / "state.db")
    table = _reopen(tmp_path, db2, ttl_s=0.3)
    with pytest.raises(ApiError) as info:
        table.get(call.id)
    assert info.value.kind == NOT_FOUND
    assert "it ended more than 0.6 s ago" in info.value.message


def test_a_call_that_ended_before_it_was_added_is_recorded(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    call = Call("app", "f", "run", b"", timeout_s=60, retries=0)
    call.finish(Outcome(ok=True, blob=b"fast"))  # the pool answered before spawn's reply
    table.add(call)
    table = _reopen(tmp_path, db)
    assert table.get(call.id).outcome == Outcome(ok=True, blob=b"fast")


def test_an_orphan_result_file_is_removed_at_start(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    table.recover()
    orphan = tmp_path / "call-results" / ".fc-0123.partial"
    orphan.write_bytes(b"half")
    table = _reopen(tmp_path, db)
    assert not orphan.exists()


def test_an_unknown_id_is_not_found(tmp_path: Path) -> None:
    _, table = _table(tmp_path, ttl_s=7 * 86400)
    with pytest.raises(ApiError) as info:
        table.get("fc-nope")
    assert info.value.kind == NOT_FOUND
    assert info.value.message == ("no call with id 'fc-nope': no spawned call of this server "
                                  "had it, or it ended more than 14 days ago")


def test_a_forgotten_call_is_gone_with_its_result_file(tmp_path: Path) -> None:
    db, table = _table(tmp_path)
    call = _spawned(table)
    table.forget(call.id)  # not ended: nothing to drop yet
    call.finish(Outcome(ok=True, blob=b"z" * (INLINE_RESULT_BYTES + 1)))
    table.forget(call.id)
    assert list((tmp_path / "call-results").iterdir()) == []
    with pytest.raises(ApiError) as info:
        table.get(call.id)
    assert info.value.kind == NOT_FOUND


def test_map_keeps_no_result_spawn_does(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    out = server.python(
        "import coldsnap\n"
        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
        "print(list(sq.map(range(5))), sq.spawn(3).get(timeout=60))\n").stdout
    assert out.split("]")[1].strip() == "9" and out.startswith("[0, 1, 4, 9, 16")
    with sqlite3.connect(server.settings.db_path) as db:
        assert db.execute("SELECT state FROM calls").fetchall() == [("done",)]
