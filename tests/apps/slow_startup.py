"""Containers whose startup outlasts its limit (timeout= or startup_timeout=), and one
whose startup_timeout= lets a slow hook finish."""

import time

import coldsnap

app = coldsnap.App("test-startup-timeout")


@app.cls(enable_memory_snapshot=True, timeout=3, max_containers=1)
class HangsBeforeSnapshot:
    @coldsnap.enter(snap=True)
    def load(self):
        print("load: starting", flush=True)
        time.sleep(30)

    @coldsnap.method()
    def run(self) -> str:
        return "ran"


@app.cls(enable_memory_snapshot=True, timeout=3)
class HangsAfterRestore:
    @coldsnap.enter(snap=False)
    def connect(self):
        time.sleep(30)

    @coldsnap.method()
    def run(self) -> str:
        return "ran"


@app.cls(timeout=60, startup_timeout=2)
class HangsWithoutSnapshot:
    @coldsnap.enter()
    def load(self):
        time.sleep(30)

    @coldsnap.method()
    def run(self) -> str:
        return "ran"


@app.cls(enable_memory_snapshot=True, timeout=3, startup_timeout=30)
class SlowButAllowed:
    @coldsnap.enter(snap=True)
    def load(self):
        time.sleep(5)

    @coldsnap.method()
    def run(self) -> str:
        return "ran"
