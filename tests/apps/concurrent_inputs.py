"""Functions and a class under @coldsnap.concurrent: each input reports where and when it
ran (container, thread, event loop), so tests can tell concurrent inputs apart."""

import asyncio
import os
import threading
import time

import coldsnap

app = coldsnap.App("test-concurrent")


def _where(started: float, **extra: object) -> dict:
    return {"container": os.environ["COLDSNAP_CONTAINER_ID"], "thread": threading.get_ident(),
            "start": started, "end": time.time(), **extra}


@app.function(enable_memory_snapshot=True)
@coldsnap.concurrent(max_inputs=4)
def nap(seconds: float) -> dict:
    started = time.time()
    print(f"nap {seconds} starts", flush=True)
    time.sleep(seconds)
    return _where(started)


@app.function(enable_memory_snapshot=True)
@coldsnap.concurrent(max_inputs=2)
def nap_in_twos(seconds: float) -> dict:
    started = time.time()
    time.sleep(seconds)
    return _where(started)


@app.function()
@coldsnap.concurrent(max_inputs=4)
async def async_nap(seconds: float) -> dict:
    started = time.time()
    await asyncio.sleep(seconds)
    return _where(started, loop=id(asyncio.get_running_loop()))


@app.function(timeout=4, startup_timeout=120)
@coldsnap.concurrent(max_inputs=3)
def hang(seconds: float) -> dict:
    started = time.time()
    if seconds < 0:  # the container dies under its other inputs
        os._exit(3)
    time.sleep(seconds)
    return _where(started)


@app.cls(enable_memory_snapshot=True, scaledown_window=2)
@coldsnap.concurrent(max_inputs=3)
class Snapped:
    @coldsnap.enter(snap=True)
    def load(self) -> None:
        self.weights = "loaded before the snapshot"

    @coldsnap.method()
    def run(self, seconds: float) -> dict:
        started = time.time()
        time.sleep(seconds)
        return _where(started, weights=self.weights)


@app.cls()
class Plain:  # one input at a time, unless called through Cls.with_concurrency
    @coldsnap.method()
    def run(self, seconds: float) -> dict:
        started = time.time()
        time.sleep(seconds)
        return _where(started)
