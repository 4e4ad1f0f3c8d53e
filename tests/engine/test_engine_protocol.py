"""The Engine Protocol lists what callers use, both engines have all of it, and nobody
probes an engine with getattr. (mypy, in scripts/test.sh, checks the signatures.)"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from coldsnap.engine import ENGINES, Engine
from coldsnap.engine.none_engine import NoneEngine
from coldsnap.engine.store import SnapshotStore

if typing.TYPE_CHECKING:
    from coldsnap.engine.criu_engine import CriuEngine

PACKAGE = Path(__file__).resolve().parents[2] / "coldsnap"
MEMBERS = {name for name in vars(Engine) if not name.startswith("_")} | set(
    Engine.__annotations__)


def test_the_protocol_lists_every_member_callers_use() -> None:
    assert MEMBERS == {"name", "host_key", "isolated", "store", "start", "checkpoint",
                       "restore", "lookup", "mark_failed", "failure", "snapshots_deleted",
                       "free_warm_memory", "close"}


def test_the_engine_factories_return_engines_so_mypy_checks_them() -> None:
    for name, factory in ENGINES.items():
        assert typing.get_type_hints(factory)["return"] is Engine, name


def test_the_none_engine_has_every_member_and_no_store(tmp_path: Path) -> None:
    engine = NoneEngine(tmp_path)
    assert all(hasattr(engine, member) for member in MEMBERS)
    assert engine.store is None
    assert engine.failure("k") is None and engine.lookup("k") is None
    engine.snapshots_deleted()
    engine.free_warm_memory()  # it keeps none: nothing to free, nothing raised
    engine.close()


def test_the_criu_engine_has_every_member(engine: CriuEngine) -> None:
    # `engine` is the real one (tests/engine/conftest.py); skipped without CRIU.
    assert all(hasattr(engine, member) for member in MEMBERS)
    assert isinstance(engine.store, SnapshotStore)


def test_nothing_in_coldsnap_probes_an_engine_with_getattr() -> None:
    probe = re.compile(r"getattr\(\s*(self\.)?_?engine\b")
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if probe.search(path.read_text())]
    assert offenders == [], "use a member of the Engine Protocol (engine/base.py) instead"
