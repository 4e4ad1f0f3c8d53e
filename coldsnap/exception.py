"""The exceptions coldsnap raises, under Modal's module name (``modal.exception``).

Modal's names where Modal has one, coldsnap's earlier names as aliases of the
same classes. What the server answers maps onto them (``wire/errors.py``):
a missing app, function, call, Dict or Queue is ``NotFoundError``; a call past
its timeout ``FunctionTimeoutError`` (a ``TimeoutError``); no server
``ConnectionError``; a refused token ``AuthError``; a payload over the limit
``RequestSizeError``; a malformed request ``InvalidError``; a server failure
``InternalError`` (a ``RemoteError``); a container that died, a failed deploy or
an interrupted call ``ExecutionError``; a Modal API coldsnap lacks
``UnimplementedError``. Example::

    import coldsnap

    try:
        coldsnap.Function.from_name("no-such-app", "square").remote(3)
    except coldsnap.exception.NotFoundError as exc:
        print(f"deploy it first: {exc}")
"""

from coldsnap.unsupported import module_getattr
from coldsnap.wire.errors import (
    AuthError,
    BadRequestError,
    CallTimeoutError,
    ConnectionError,
    DeserializationError,
    Error,
    ExecutionError,
    FunctionTimeoutError,
    InputCancellation,
    InternalError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
    RequestSizeError,
    SerializationError,
    ServerError,
    ServerUnavailable,
    TimeoutError,
    UnimplementedError,
    VersionError,
)

__all__ = [
    "AuthError",
    "BadRequestError",
    "CallTimeoutError",
    "ConnectionError",
    "DeserializationError",
    "Error",
    "ExecutionError",
    "FunctionTimeoutError",
    "InputCancellation",
    "InternalError",
    "InvalidError",
    "NotFoundError",
    "OutputExpiredError",
    "RemoteError",
    "RequestSizeError",
    "SerializationError",
    "ServerError",
    "ServerUnavailable",
    "TimeoutError",
    "UnimplementedError",
    "VersionError",
]



# Modal's exceptions for what coldsnap never does (sandboxes, mounts, quotas, ...):
# defined so that code catching them by name still runs; nothing raises them.
class AlreadyExistsError(Error):
    """A resource creation conflicts with an existing one (Modal's name; not raised)."""


class ConflictError(InvalidError):
    """The request conflicts with the current state (Modal's name; not raised)."""


class PermissionDeniedError(Error):
    """Not allowed (Modal's name; not raised: the token grants everything)."""


class ResourceExhaustedError(Error):
    """A quota or rate limit was hit (Modal's name; not raised)."""


class ServiceError(Error):
    """Client/server communication failed (Modal's name; coldsnap raises ConnectionError)."""


class DataLossError(Error):
    """Data was lost or corrupted (Modal's name; not raised)."""


class ClientClosed(Error):
    """The client was closed (Modal's name; not raised)."""


class SandboxTimeoutError(TimeoutError):
    """A sandbox ran past its limit (Modal's name; coldsnap has no sandboxes)."""


class SandboxTerminatedError(Error):
    """A sandbox was terminated (Modal's name; coldsnap has no sandboxes)."""


class ExecTimeoutError(TimeoutError):
    """A container process ran past its limit (Modal's name; not raised)."""


class InteractiveTimeoutError(TimeoutError):
    """An interactive session timed out (Modal's name; not raised)."""


class MountUploadTimeoutError(TimeoutError):
    """A mount upload timed out (Modal's name; not raised)."""


class VolumeUploadTimeoutError(TimeoutError):
    """A volume upload timed out (Modal's name; not raised)."""


class ModuleNotMountable(Error):
    """A module can't be mounted (Modal's name; not raised)."""


class FilesystemExecutionError(Error):
    """A filesystem operation failed in a sandbox (Modal's name; not raised)."""


__all__ += [
    "AlreadyExistsError", "ClientClosed", "ConflictError", "DataLossError",
    "ExecTimeoutError", "FilesystemExecutionError", "InteractiveTimeoutError",
    "ModuleNotMountable", "MountUploadTimeoutError", "PermissionDeniedError",
    "ResourceExhaustedError", "SandboxTerminatedError", "SandboxTimeoutError",
    "ServiceError", "VolumeUploadTimeoutError",
]
__getattr__ = module_getattr("coldsnap.exception", __all__)
