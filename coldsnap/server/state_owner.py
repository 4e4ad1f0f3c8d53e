"""Whose state dir this is, a fleet's or a single host's: the server says so in it at
start (``wire/fleet_mark.py``), so a client that later finds no server knows whether
it may start one there (a single host's) or must not (a fleet's: docs/fleet.md)."""

from __future__ import annotations

import logging
import os

from coldsnap.settings import EMBEDDED_ENV, Settings
from coldsnap.wire.fleet_mark import fleet_cluster, forget_fleet, remember_fleet, serve_command

logger = logging.getLogger(__name__)


def claim_state_dir(settings: Settings) -> None:
    """Mark the state dir as the fleet's of ``settings.cluster``, or as a single host's
    again (with a warning when it was a fleet's); a background server on a fleet's dir
    exits instead. The caller holds the state dir."""
    if settings.cluster:
        remember_fleet(settings.state_dir, settings.cluster)
        return
    was = fleet_cluster(settings.state_dir)
    if was is None:
        return
    if os.environ.get(EMBEDDED_ENV) == "1":  # a client's: clients check first (an old one?)
        raise SystemExit(f"error: state dir {settings.state_dir} belongs to the control "
                         f"plane of a fleet (cluster {was}): a server started in the "
                         f"background does not take it over; run `{serve_command(was)}`")
    logger.warning("state dir %s was the control plane's of the fleet on %s; it is served "
                   "as a single host now (the fleet's hosts are not used): to serve the "
                   "fleet again, stop this server and run `%s`", settings.state_dir, was,
                   serve_command(was))
    forget_fleet(settings.state_dir)
