"""coldsnap: serverless Python functions that cold-boot from memory snapshots.

Example::

    import coldsnap

    app = coldsnap.App("squares")

    @app.function(enable_memory_snapshot=True)
    def square(x: int) -> int:
        return x * x

The exceptions a caller may catch are in ``coldsnap.exception`` (``Error``, the base
of them all, is here too).
"""

from coldsnap import exception
from coldsnap.app import App
from coldsnap.concurrency import concurrent
from coldsnap.handles import Cls, Function, FunctionCall
from coldsnap.image import Image
from coldsnap.markers import build, enter, exit, method
from coldsnap.wire.errors import Error

__all__ = [
    "App",
    "Cls",
    "Error",
    "Function",
    "FunctionCall",
    "Image",
    "build",
    "concurrent",
    "enter",
    "exception",
    "exit",
    "method",
]
