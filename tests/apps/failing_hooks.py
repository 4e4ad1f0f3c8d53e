"""Hooks that fail: which one is chosen by FAILING_HOOKS_STAGE (snap, enter, import)."""

import os

import coldsnap

app = coldsnap.App("test-failing-hooks")

if os.environ.get("FAILING_HOOKS_STAGE") == "import":
    raise RuntimeError("failing_hooks: import-time failure on purpose")


class WeightsMissing(RuntimeError):
    pass


@app.cls(enable_memory_snapshot=True)
class Broken:
    @coldsnap.enter(snap=True)
    def load(self):
        print("load: starting", flush=True)
        if os.environ.get("FAILING_HOOKS_STAGE", "snap") == "snap":
            raise WeightsMissing("no weights at /model.bin")

    @coldsnap.enter(snap=False)
    def setup(self):
        if os.environ.get("FAILING_HOOKS_STAGE") == "enter":
            raise WeightsMissing("setup failed on purpose")

    @coldsnap.method()
    def run(self) -> str:
        return "unreachable when a hook fails"
