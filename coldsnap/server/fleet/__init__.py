"""The fleet: one scheduler, any number of hosts, each run by a host agent.

``make_fleet(settings)`` is the engine the server drives: on a single host a
fleet of one in-process ``LocalAgent``; with ``settings.cluster`` (``coldsnap serve
--cluster ray[://ADDRESS]``) an agent on every Ray node offering the ``coldsnap``
resource (docs/fleet.md).
"""

from __future__ import annotations

from coldsnap.engine import make_engine
from coldsnap.server.fleet.agent import Capacity, HostAgent, LocalAgent
from coldsnap.server.fleet.fleet import Fleet
from coldsnap.server.remote_store import open_remote
from coldsnap.settings import Settings


def make_fleet(settings: Settings) -> Fleet:
    """This host alone (the default), or the Ray cluster ``settings.cluster`` names."""
    if not settings.cluster:
        engine = make_engine(settings)
        return Fleet([LocalAgent(engine, remote=open_remote(settings, engine))])
    from coldsnap.server.fleet.ray_fleet import start_ray_fleet

    return start_ray_fleet(settings)


__all__ = ["Capacity", "Fleet", "HostAgent", "LocalAgent", "make_fleet"]
