"""The control plane: authenticated local API, app registry, scheduler, snapshot policy.

Nothing is imported here: clients and containers import ``coldsnap.wire.token``
(the token), and must not pay for the whole server with it. The server starts
from ``coldsnap.server.daemon.serve``.
"""
