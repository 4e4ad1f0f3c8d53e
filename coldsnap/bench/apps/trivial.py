"""Benchmark workload `trivial`: the platform's own floor."""

import coldsnap

app = coldsnap.App("bench-trivial")


@app.function(enable_memory_snapshot=True)
def ping() -> str:
    return "pong"
