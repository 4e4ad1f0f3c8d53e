"""The three pipes between the server and a container."""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO

from coldsnap.wire.container import CTRL_IN_ENV, CTRL_OUT_ENV


@dataclasses.dataclass
class ContainerPipes:
    """Both ends of the control pipes and the log pipe, until the child has its ends."""

    ctrl_in_r: int  # container reads
    ctrl_in_w: int  # server writes
    ctrl_out_r: int  # server reads
    ctrl_out_w: int  # container writes
    logs_r: int  # server reads
    logs_w: int  # container's stdout and stderr

    @classmethod
    def create(cls) -> ContainerPipes:
        ctrl_in_r, ctrl_in_w = os.pipe()
        ctrl_out_r, ctrl_out_w = os.pipe()
        logs_r, logs_w = os.pipe()
        # Only the child ends are passed on explicitly (pass_fds); keep ours private.
        for fd in (ctrl_in_w, ctrl_out_r, logs_r):
            os.set_inheritable(fd, False)
        return cls(ctrl_in_r, ctrl_in_w, ctrl_out_r, ctrl_out_w, logs_r, logs_w)

    def child_fds(self) -> tuple[int, int]:
        return (self.ctrl_in_r, self.ctrl_out_w)

    def child_env(self) -> dict[str, str]:
        return {CTRL_IN_ENV: str(self.ctrl_in_r), CTRL_OUT_ENV: str(self.ctrl_out_w)}

    def close_child_ends(self) -> None:
        for fd in (self.ctrl_in_r, self.ctrl_out_w, self.logs_w):
            os.close(fd)

    def close_all(self) -> None:
        """Both ends: the container never started."""
        for fd in (self.ctrl_in_r, self.ctrl_in_w, self.ctrl_out_r, self.ctrl_out_w,
                   self.logs_r, self.logs_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def server_streams(self) -> tuple[BinaryIO, BinaryIO, BinaryIO]:
        """(ctrl_in writer, ctrl_out reader, logs reader) as buffered files."""
        return (
            os.fdopen(self.ctrl_in_w, "wb"),
            os.fdopen(self.ctrl_out_r, "rb"),
            os.fdopen(self.logs_r, "rb"),
        )
