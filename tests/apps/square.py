"""A function app: square(x), a function that raises, and a big result."""

import coldsnap

app = coldsnap.App("test-square")


class SquareError(ValueError):
    """Raised on purpose; the caller should see this type."""


@app.function(enable_memory_snapshot=True)
def square(x: int) -> int:
    print(f"square({x})", flush=True)
    return x * x


@app.function()
def fail(message: str) -> None:
    raise SquareError(f"refusing: {message}")


@app.function()
def fail_builtin(key: str) -> None:
    raise KeyError(key)


@app.function()
def big(n_bytes: int) -> bytes:
    return b"\x5a" * n_bytes


@app.local_entrypoint()
def main():
    print(square.remote(7))
