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

from coldsnap import container_process as container_process  # modal.container_process
from coldsnap import dict as dict  # modal.dict (import modal.dict)
from coldsnap import exception, experimental
from coldsnap import functions as functions  # modal.functions (from ... import FunctionCall)
from coldsnap import io_streams as io_streams  # modal.io_streams
from coldsnap import queue as queue  # modal.queue (import modal.queue)
from coldsnap.app import App
from coldsnap.batching import batched
from coldsnap.concurrency import concurrent
from coldsnap.current import current_function_call_id, current_input_id
from coldsnap.dict_queue import Dict, Queue
from coldsnap.handles import Cls, Function, FunctionCall
from coldsnap.image import Image
from coldsnap.markers import build, enter, exit, method
from coldsnap.parameter import parameter
from coldsnap.running import enable_output
from coldsnap.sandboxes import Sandbox
from coldsnap.schedule import Cron, Period
from coldsnap.secret import Secret
from coldsnap.snapshot_hooks import after_restore, before_snapshot
from coldsnap.unsupported import module_getattr
from coldsnap.volume import Volume
from coldsnap.web import asgi_app, fastapi_endpoint, web_endpoint, web_server, wsgi_app
from coldsnap.wire.errors import Error
from coldsnap.wire.retries import Retries

__all__ = [
    "App",
    "Cls",
    "Cron",
    "Dict",
    "Error",
    "Function",
    "FunctionCall",
    "Image",
    "Period",
    "Queue",
    "Retries",
    "Sandbox",
    "Secret",
    "Volume",
    "after_restore",
    "asgi_app",
    "batched",
    "before_snapshot",
    "build",
    "concurrent",
    "current_function_call_id",
    "current_input_id",
    "enable_output",
    "enter",
    "exception",
    "exit",
    "experimental",
    "fastapi_endpoint",
    "method",
    "parameter",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]

# A Modal name coldsnap lacks says so (coldsnap.exception.UnimplementedError).
__getattr__ = module_getattr("coldsnap", __all__)
