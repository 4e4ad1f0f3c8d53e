"""Batched functions and a batched class method: each returns, per input, the value and
the size of the batch it ran in, so tests see how inputs were grouped."""

import time

import coldsnap

app = coldsnap.App("batched-inputs")


@app.function()
@coldsnap.batched(max_batch_size=4, wait_ms=1000)
def add(xs: list[int], ys: list[int]) -> list[tuple[int, int]]:
    print(f"batch of {len(xs)}", flush=True)
    return [(x + y, len(xs)) for x, y in zip(xs, ys, strict=True)]


@app.function()
@coldsnap.batched(max_batch_size=8, wait_ms=300)
async def lone(xs: list[float]) -> list[float]:
    return [time.time() - x for x in xs]  # how long each input waited to run


@app.function()
@coldsnap.batched(max_batch_size=4, wait_ms=500)
def fails(xs: list[int]) -> list[int]:
    if 13 in xs:
        raise ValueError(f"13 is unlucky (batch {sorted(xs)})")
    return xs


@app.function()
@coldsnap.batched(max_batch_size=4, wait_ms=500)
def too_short(xs: list[int]) -> list[int]:
    return xs[:-1]


@app.cls(enable_memory_snapshot=True)
class Scaler:
    factor: int = coldsnap.parameter(default=10)

    @coldsnap.batched(max_batch_size=3, wait_ms=1000)
    async def scale(self, xs: list[int]) -> list[tuple[int, int]]:
        return [(x * self.factor, len(xs)) for x in xs]


@app.function()
@coldsnap.batched(max_batch_size=4, wait_ms=100)
def plus_one(x):  # type: ignore[no-untyped-def]  # written for one value: x is a list
    return x + 1
