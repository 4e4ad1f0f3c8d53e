"""coldsnap.before_snapshot / after_restore: the registries' order and errors, and a
real snapshot (CRIU) running them once before the dump and once per restore."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import coldsnap
from coldsnap import snapshot_hooks
from coldsnap.wire.errors import InvalidError
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import app_with_env, module_server, require_criu, stats, wait_for

EXPECTED = [
    "enter(snap=True)",
    "before_snapshot close_second",  # last registered first
    "before_snapshot close_first",
    "after_restore reopen_first",  # first registered first
    "after_restore reopen_second",
    "enter(snap=False)",
]
CALL = """
import json
import coldsnap
R = coldsnap.Cls.from_name("test-snapshot-hooks", "Recorder")
try:
    print(json.dumps(R().events.remote()))
except Exception as exc:
    print(type(exc).__name__, "|", exc, "|", " ".join(getattr(exc, "__notes__", [])))
"""


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty registries for this test (the module's own are process-wide)."""
    monkeypatch.setattr(snapshot_hooks, "_before", [])
    monkeypatch.setattr(snapshot_hooks, "_after", [])


def first() -> None: ...


def second() -> None: ...


def test_before_snapshot_runs_last_registered_first(registries: None) -> None:
    assert coldsnap.before_snapshot(first) is first  # returns it: a decorator too
    coldsnap.before_snapshot(second)
    assert snapshot_hooks.before_snapshot_functions() == [
        (f"@coldsnap.before_snapshot {__name__}.second", second),
        (f"@coldsnap.before_snapshot {__name__}.first", first),
    ]


def test_after_restore_runs_in_registration_order(registries: None) -> None:
    coldsnap.after_restore(first)
    coldsnap.after_restore(second)
    assert [f for _, f in snapshot_hooks.after_restore_functions()] == [first, second]


def test_registering_twice_or_a_non_function_is_an_error(registries: None) -> None:
    coldsnap.after_restore(first)
    with pytest.raises(InvalidError, match=rf"{__name__}.first is already registered with "
                       r"coldsnap.after_restore; register each function once"):
        coldsnap.after_restore(first)
    with pytest.raises(InvalidError, match=r"coldsnap.before_snapshot takes a function, "
                       r"not 3: use it as @coldsnap.before_snapshot"):
        coldsnap.before_snapshot(3)  # type: ignore[type-var]


def test_the_registries_hand_out_copies(registries: None) -> None:
    coldsnap.before_snapshot(first)
    snapshot_hooks.before_snapshot_functions().clear()
    assert len(snapshot_hooks.before_snapshot_functions()) == 1


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _events(server: ServerHandle) -> tuple[list[str], str]:
    out = server.python(CALL).stdout.strip()
    events, container = json.loads(out)
    return events, container


def test_registered_functions_run_once_before_the_dump_and_once_per_restore(
        srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "snapshot_hooks.py"))
    events, container = _events(srv)
    assert events == EXPECTED
    assert _events(srv) == (EXPECTED, container)  # the same container: nothing ran again

    def no_containers() -> bool:
        return not stats(srv, "test-snapshot-hooks")["functions"][0]["containers"]

    wait_for(no_containers, 60, "the idle container to scale down")  # scaledown_window=1
    again, other = _events(srv)  # a new container, restored from the same snapshot
    assert other != container
    assert again == EXPECTED
    kinds = [b["kind"] for b in stats(srv, "test-snapshot-hooks")["boots"]]
    assert kinds.count("restored") >= 1 and kinds.count("snapshot-created") == 1, kinds


@pytest.mark.parametrize("stage,message", [
    ("before", "close_second failed on purpose"),
    ("after", "reopen_second failed on purpose"),
])
def test_an_error_in_one_fails_the_boot_like_a_hook_error(
        srv: ServerHandle, tmp_path: Path, stage: str, message: str) -> None:
    app = app_with_env(tmp_path, APPS / "snapshot_hooks.py", {"SNAPSHOT_HOOKS_FAIL": stage})
    srv.cli("deploy", str(app))
    result = srv.python(CALL)
    assert result.stdout.startswith(f"PoolError | {message} |"), result.stdout
    assert "failed to boot in" in result.stdout
    name = "close_second" if stage == "before" else "reopen_second"
    label = f"@coldsnap.{stage}_{'snapshot' if stage == 'before' else 'restore'}"
    assert f"{label} snapshot_hooks.{name}" in result.stdout
    # The traceback, as for a hook's error, reaches the caller's stderr.
    assert "Traceback (most recent call last)" in result.stderr
    assert f'raise PoolError("{message}")' in result.stderr
