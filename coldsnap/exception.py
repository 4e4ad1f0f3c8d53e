"""The exceptions coldsnap raises, under Modal's module name (``modal.exception``).

Modal's names where Modal has one, coldsnap's earlier names as aliases of the
same classes. Example::

    import coldsnap

    try:
        coldsnap.Function.from_name("no-such-app", "square").remote(3)
    except coldsnap.exception.NotFoundError as exc:
        print(f"deploy it first: {exc}")
"""

from coldsnap.wire.errors import (
    CallTimeoutError,
    ConnectionError,
    Error,
    FunctionTimeoutError,
    InputCancellation,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    ServerError,
    ServerUnavailable,
)

__all__ = [
    "CallTimeoutError",
    "ConnectionError",
    "Error",
    "FunctionTimeoutError",
    "InputCancellation",
    "InvalidError",
    "NotFoundError",
    "OutputExpiredError",
    "ServerError",
    "ServerUnavailable",
]
