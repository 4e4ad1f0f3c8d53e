"""A container's client: a function's calls to other functions (``.remote()``,
``.spawn()``, ``.map()``) go to the server over the runtime's control pipe, not its
socket (``Client.default()`` returns one inside a container)."""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol

from coldsnap.client import Client
from coldsnap.settings import Settings
from coldsnap.wire import ops
from coldsnap.wire.call_graph import PARENT
from coldsnap.wire.errors import InvalidError, ServerUnavailable
from coldsnap.wire.framing import ChannelClosed

NOT_THE_RUNTIME_MESSAGE = (
    "in a coldsnap container only the runtime's own process can call other functions "
    "(.remote(), .spawn(), .map()): this is another process (a subprocess?). Make the call "
    "from the function itself")
NOT_SERVING_MESSAGE = (
    "calls to other functions (.remote(), .spawn(), .map()) are possible from inside a call, "
    "not from @enter, @build or @exit hooks: the server answers a container's requests "
    "while it runs a call. Make the call in a "
    "method or function")


class RuntimeChannel(Protocol):
    """What a ContainerClient needs of the runtime's control channel (_runtime/channel.py)."""

    serving: bool  # the runtime is running a call: the server answers requests now
    deadline: float | None  # when the running call times out (time.monotonic())
    max_payload: int | None  # the server's payload limit

    def request(self, header: dict[str, Any], blob: bytes | None
                ) -> tuple[dict[str, Any], bytes | None]: ...


class ContainerClient(Client):
    """A container's way to the server: API requests over the runtime's control pipe.

    The server answers the ops a function needs to call others (ping, call,
    spawn, get: ``CONTAINER_OPS`` in server/api.py) while the container runs a
    call; the requests carry no token (the pipe is the container's own).
    """

    _current: ContainerClient | None = None
    # The called containers' lines are in the app's log already, under their own ids.
    echo_logs = False

    def __init__(self, channel: RuntimeChannel) -> None:
        super().__init__(Settings())
        self._channel = channel

    @classmethod
    def default(cls) -> ContainerClient:
        # Only inside a container, where the runtime has already loaded it.
        from coldsnap._runtime.channel import current

        runtime_channel = current()
        if runtime_channel is None:  # not the runtime's process (a subprocess?)
            raise InvalidError(NOT_THE_RUNTIME_MESSAGE)
        with cls._default_lock:
            if cls._current is None or cls._current._channel is not runtime_channel:
                cls._current = cls(runtime_channel)
            return cls._current

    def _exchange(self, header: dict[str, Any], blob: bytes | None, restart: bool = True
                  ) -> tuple[dict[str, Any], bytes | None]:
        if not self._channel.serving:
            raise InvalidError(NOT_SERVING_MESSAGE)
        deadline = self._channel.deadline
        if deadline is not None and header.get(ops.OP) in (ops.CALL, ops.GET):
            left = max(0.001, deadline - time.monotonic())
            given = header.get("timeout")
            header = {**header, "timeout": left if given is None else min(given, left)}
        if header.get(ops.OP) in (ops.CALL, ops.SPAWN):  # the call graph's edge
            from coldsnap._runtime.channel import parent_input

            parent = parent_input()
            if parent is not None:
                header = {**header, PARENT: parent}
        limit = self._channel.max_payload
        if blob is not None and limit is not None and len(blob) > limit:
            raise InvalidError(
                f"the arguments of this {header.get(ops.OP)} are {len(blob)} bytes pickled, over "
                f"the server's limit of {limit} bytes (COLDSNAP_MAX_PAYLOAD_BYTES); pass a "
                "path to a file or volume instead, or raise the limit")
        try:
            reply: tuple[dict[str, Any], bytes | None] = self._channel.request(header, blob)
        except (ChannelClosed, OSError) as exc:
            raise ServerUnavailable(f"the coldsnap server went away during "
                                    f"{header.get(ops.OP)!r} ({exc})") from None
        return reply

    def _take_socket(self, restart: bool = True
                     ) -> tuple[socket.socket, bool]:  # deploy's progress stream, say
        raise InvalidError("from inside a container only calls to other functions "
                           "(.remote(), .spawn(), .map(), lookups) reach the server")
