"""Functions that get secrets: a named one for the whole app, an inline one each, and a
snapshotted class that reads them before and after its snapshot."""

import os

import coldsnap

app = coldsnap.App("test-secrets", secrets=[coldsnap.Secret.from_name("test-token")])
inline = coldsnap.Secret.from_dict({"INLINE_KEY": "inline-value-7f3e", "SKIPPED": None})


@app.function(secrets=[inline])
def env(names: list[str]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


@app.cls(enable_memory_snapshot=True, secrets=[inline])
class Snap:
    @coldsnap.enter(snap=True)
    def load(self) -> None:
        self.at_snapshot = os.environ.get("TOKEN")

    @coldsnap.method()
    def env(self, names: list[str]) -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in names}
