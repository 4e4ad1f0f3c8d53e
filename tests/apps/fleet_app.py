"""Functions for the fleet tests (tests/fleet): slow calls, with and without retries."""

import time

import coldsnap

app = coldsnap.App("fleet-app")


@app.function(enable_memory_snapshot=True)
def slow(seconds: float) -> str:
    print(f"slow({seconds}) started", flush=True)
    time.sleep(seconds)
    return "done"


@app.function(retries=coldsnap.Retries(max_retries=2, initial_delay=0.5))
def slow_retried(seconds: float) -> str:
    print(f"slow_retried({seconds}) started", flush=True)
    time.sleep(seconds)
    return "done"



@app.cls()
class Greeter:
    name: str = coldsnap.parameter()

    @coldsnap.method()
    def greet(self) -> str:
        print(f"greet({self.name}) started", flush=True)
        return f"hello {self.name}"
