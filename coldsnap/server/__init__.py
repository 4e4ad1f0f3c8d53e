"""The control plane: authenticated local API, app registry, scheduler, snapshot policy."""

from coldsnap.server.daemon import serve
from coldsnap.server.process import EXIT_ALREADY_RUNNING, AlreadyRunning

__all__ = ["EXIT_ALREADY_RUNNING", "AlreadyRunning", "serve"]
