"""Functions registered with coldsnap.before_snapshot / after_restore, around a class's
enter hooks; each step appends to EVENTS, which a call returns. SNAPSHOT_HOOKS_FAIL=
before|after makes one registered function raise."""

import os

import coldsnap

app = coldsnap.App("test-snapshot-hooks")
EVENTS: list[str] = []


class PoolError(RuntimeError):
    pass


@coldsnap.before_snapshot
def close_first() -> None:
    EVENTS.append("before_snapshot close_first")


def close_second() -> None:
    EVENTS.append("before_snapshot close_second")
    if os.environ.get("SNAPSHOT_HOOKS_FAIL") == "before":
        raise PoolError("close_second failed on purpose")


coldsnap.before_snapshot(close_second)  # a call, not a decorator, works the same


@coldsnap.after_restore
def reopen_first() -> None:
    EVENTS.append("after_restore reopen_first")


@coldsnap.after_restore
async def reopen_second() -> None:
    EVENTS.append("after_restore reopen_second")
    if os.environ.get("SNAPSHOT_HOOKS_FAIL") == "after":
        raise PoolError("reopen_second failed on purpose")


@app.cls(enable_memory_snapshot=True, scaledown_window=1)
class Recorder:
    @coldsnap.enter(snap=True)
    def load(self) -> None:
        EVENTS.append("enter(snap=True)")

    @coldsnap.enter(snap=False)
    def setup(self) -> None:
        EVENTS.append("enter(snap=False)")

    @coldsnap.method()
    def events(self) -> tuple[list[str], str]:
        return list(EVENTS), os.environ.get("COLDSNAP_CONTAINER_ID", "")
