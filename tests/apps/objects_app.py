"""Dicts and Queues used from inside functions (tests/test_dict_queue.py).

The Dict and Queue are made at import time, in the snapshot phase: from_name
sends nothing until a function uses them.
"""

import coldsnap

app = coldsnap.App("test-objects")
results = coldsnap.Dict.from_name("test-results", create_if_missing=True)
jobs = coldsnap.Queue.from_name("test-jobs", create_if_missing=True)


@app.function(enable_memory_snapshot=True)
def record(key: str, value: int) -> int:
    results[key] = value
    jobs.put(value, partition="done")
    return len(results)


@app.function()
def wait_for_job(timeout: float) -> object:
    return jobs.get(timeout=timeout)


@app.function()
def put_job(value: object) -> None:
    jobs.put(value)


@app.function()
def use_given(d: coldsnap.Dict) -> list[object]:
    d["from-container"] = True
    return sorted(d.keys())
