"""An exit hook a test can observe: it writes the file named by EXIT_HOOK_MARKER."""

import os

import coldsnap

app = coldsnap.App("test-exit-hook")


@app.cls()
class Worker:
    @coldsnap.enter()
    def start(self):
        self.calls = 0

    @coldsnap.method()
    def work(self, x: int) -> int:
        self.calls += 1
        return x + 1

    @coldsnap.exit()
    def stop(self):
        marker = os.environ.get("EXIT_HOOK_MARKER")
        print(f"exit hook: {self.calls} calls served", flush=True)
        if marker:
            with open(marker, "w") as f:
                f.write(f"exited after {self.calls} calls\n")
