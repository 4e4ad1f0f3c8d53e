"""A function whose container counts the fleet tests watch (tests/fleet)."""

import time

import coldsnap

app = coldsnap.App("fleet-bounded")


@app.function(min_containers=2, max_containers=3)
def bounded(seconds: float) -> str:
    time.sleep(seconds)
    return "done"
