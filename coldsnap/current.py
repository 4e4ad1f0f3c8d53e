"""What a function's code can ask about the input it is running (Modal's names).

Example::

    @app.function()
    def work(x):
        print("serving call", coldsnap.current_function_call_id())
"""

from __future__ import annotations

import contextvars

# The id of the input this thread or asyncio task runs (set by the container's
# runtime for each input; None outside one: at import, in hooks, on a client).
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "coldsnap_call_id", default=None)


def current_function_call_id() -> str | None:
    """The id of the call being served (``FunctionCall.from_id`` takes it), or None
    outside a call (at import, in lifecycle hooks, on a client)."""
    return CALL_ID.get()


def current_input_id() -> str | None:
    """The id of the input being served: the call's id (one input per call)."""
    return CALL_ID.get()
