"""The runtime's end of the control pipes: messages in from the server, out to it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, BinaryIO

from coldsnap._runtime import framing

CTRL_IN_ENV = "COLDSNAP_CTRL_IN_FD"
CTRL_OUT_ENV = "COLDSNAP_CTRL_OUT_FD"


class Channel:
    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Channel:
        try:
            in_fd, out_fd = int(environ[CTRL_IN_ENV]), int(environ[CTRL_OUT_ENV])
        except (KeyError, ValueError) as exc:
            raise SystemExit(
                f"coldsnap runtime: {CTRL_IN_ENV} and {CTRL_OUT_ENV} must name the control "
                f"pipes' file descriptors ({exc!r}). This module is started by the coldsnap "
                "server, not by hand."
            ) from exc
        # User code may start subprocesses: they must not hold our pipes open.
        for fd in (in_fd, out_fd):
            os.set_inheritable(fd, False)
        return cls(os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb"))

    def send(self, message_type: str, blob: bytes | None = None, **fields: Any) -> None:
        framing.write_message(self.writer, {"type": message_type, **fields}, blob)

    def receive(self) -> tuple[dict[str, Any], bytes | None]:
        """The next message; raises framing.ChannelClosed when the server hung up."""
        return framing.read_message(self.reader)
