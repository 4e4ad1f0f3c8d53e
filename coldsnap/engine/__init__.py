"""The snapshot engine: containers, CRIU checkpoints and restores, the store.

Engines are chosen by name; ``make_engine(settings)`` is the one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from coldsnap.engine.base import (
    Container,
    ContainerSpec,
    DumpFailed,
    Engine,
    EngineUnavailable,
    RestoreFailed,
    SnapshotDamaged,
    SnapshotError,
    SnapshotInfo,
    SnapshotMiss,
)
from coldsnap.settings import Settings


# The factories return their engine as an Engine: that is where mypy checks that
# each engine still has every member of the Protocol (scripts/test.sh runs it).
def _none(settings: Settings) -> Engine:
    from coldsnap.engine.none_engine import NoneEngine

    return NoneEngine()


def _criu(settings: Settings) -> Engine:
    from coldsnap.engine.criu_engine import CriuEngine

    return CriuEngine(settings)


ENGINES: dict[str, Callable[[Settings], Engine]] = {"none": _none, "criu": _criu}


def make_engine(settings: Settings) -> Engine:
    """The engine named by ``settings.engine``; ``auto`` is criu where it works, else none."""
    name = settings.engine
    if name == "auto":
        from coldsnap.engine.doctor import criu_usable

        name = "criu" if criu_usable(settings) else "none"
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(
            f"unknown snapshot engine {name!r}: set COLDSNAP_ENGINE to one of "
            f"{', '.join(sorted(ENGINES))} or auto"
        ) from None
    return factory(settings)


__all__ = [
    "ENGINES",
    "Container",
    "ContainerSpec",
    "DumpFailed",
    "Engine",
    "EngineUnavailable",
    "RestoreFailed",
    "SnapshotDamaged",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotMiss",
    "make_engine",
]
