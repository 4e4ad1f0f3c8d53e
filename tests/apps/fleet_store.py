"""A function that fills a fleet test host (2 CPUs) alone: the shared store's fleet test
(tests/fleet/test_shared_store.py) makes its snapshot's host full."""

import time

import coldsnap

app = coldsnap.App("fleet-store")


@app.function(enable_memory_snapshot=True, cpu=2.0, scaledown_window=300)
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"
