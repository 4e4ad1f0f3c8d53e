"""Functions whose calls the /metrics tests count: a snapshot one, one that raises,
and one that lets inputs queue (one container at a time)."""

import time

import coldsnap

app = coldsnap.App("test-metrics")


@app.function(enable_memory_snapshot=True)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.function()
def fail() -> None:
    raise ValueError("fail: raising on purpose")


@app.function(max_containers=1)
def one_at_a_time(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
