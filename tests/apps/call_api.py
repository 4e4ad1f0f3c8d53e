"""The call API's app: async calls, generators, map's options, cancel, Retries."""

import asyncio
import time

import coldsnap

app = coldsnap.App("test-call-api")
ATTEMPTS: list[float] = []  # per container: flaky's attempts run in the same one


@app.function()
def square(x: int) -> int:
    return x * x


@app.function()
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.function(max_containers=1)
def one_at_a_time(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.function()
def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


@app.function()
def count(n: int, pause: float = 0.0):
    for i in range(n):
        yield i
        time.sleep(pause)


@app.function()
async def count_async(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i * 10


@app.function()
def yield_then_fail():
    yield "first"
    raise RuntimeError("failed after one item")


@app.function()
async def calls_others_async(x: int) -> list[int]:
    one = await square.remote.aio(x)
    many = [v async for v in square.map.aio([1, 2])]
    streamed = [v async for v in count.remote_gen.aio(3)]
    return [one, *many, *streamed]


@app.function()
def streams_from_inside(n: int) -> list[int]:
    return list(count.remote_gen(n))


@app.function(retries=coldsnap.Retries(max_retries=2, initial_delay=0.25,
                                       backoff_coefficient=1.0))
def flaky() -> list[float]:
    ATTEMPTS.append(time.monotonic())
    if len(ATTEMPTS) < 3:
        raise RuntimeError(f"attempt {len(ATTEMPTS)} fails")
    return list(ATTEMPTS)


@app.cls(enable_memory_snapshot=True)
class Greeter:
    name: str = coldsnap.parameter()
    times: int = coldsnap.parameter(default=1)
    loud: bool = coldsnap.parameter(default=False)
    tail: bytes = coldsnap.parameter(default=b"")

    @coldsnap.enter(snap=True)
    def prepare(self) -> None:
        self.greeting = f"hello {self.name}"  # the parameters are set before enter hooks

    @coldsnap.method()
    def greet(self) -> str:
        text = " ".join([self.greeting] * self.times) + self.tail.decode()
        return text.upper() if self.loud else text

    @coldsnap.method()
    def container(self) -> str:
        import os

        return os.environ["COLDSNAP_CONTAINER_ID"]

    @coldsnap.method()
    def nap(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds
