"""The agent actors on a Ray cluster: their names, and taking them over after a restart.

Each agent is a detached, named actor (``agent_name``: one per node and per control
plane, told apart by the control plane's state dir), so it outlives the control
plane that started it. A starting control plane looks each name up
(``find_agent``): an agent started with the same coldsnap code and settings
(``agent_fingerprint``) is taken over with its live containers; any other is stopped
(its containers end) so that a new one starts in its place, and the log says why.

Ray's drain (``ray drain-node``) marks nodes that are about to leave on purpose:
``draining_nodes`` lists them (the same GCS call Ray Serve and Ray Train use).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from typing import Any

from coldsnap.identity import coldsnap_fingerprint, coldsnap_version
from coldsnap.server.fleet.host_agent import ContainerRecord
from coldsnap.server.fleet.shared import store_env
from coldsnap.settings import Settings

NAMESPACE = "coldsnap"  # the Ray namespace of the control plane and its agents
CALL_S = 30.0
END_S = 30.0  # how long a replaced agent's name may take to come free

logger = logging.getLogger(__name__)


def agent_settings(settings: Settings, node_id: str) -> Settings:
    """The settings of the agent on ``node_id``: the server's, with the host's own state,
    run and snapshot dirs (under the state dir's hosts/<node>, so that several
    simulated hosts on one machine never share them)."""
    return dataclasses.replace(settings, state_dir=settings.state_dir / "hosts" / node_id[:12],
                               snapshot_dir=None, run_dir=None, image_dir=settings.images,
                               cluster="")


def agent_name(settings: Settings, node_id: str) -> str:
    """The agent actor's name on ``node_id``, for the control plane of this state dir."""
    plane = hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]
    return f"agent-{plane}-{node_id[:16]}"


def agent_fingerprint(settings: Settings, node_id: str) -> str:
    """What an agent was started with: coldsnap's version and code, its settings and the
    shared store's environment. Only an agent with the same one is taken over."""
    parts = [coldsnap_version(), coldsnap_fingerprint(), repr(agent_settings(settings, node_id)),
             repr(sorted(store_env(settings).items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def find_agent(settings: Settings, node: dict[str, Any], token: str
               ) -> tuple[Any, dict[str, Any], list[ContainerRecord]] | None:
    """The agent an earlier control plane left on ``node``, taken over (our token from
    now on): (actor, its info, its live containers). None when there is none, or it
    was not ours to take (stopped then)."""
    import ray

    node_id = node["NodeID"]
    name = agent_name(settings, node_id)
    try:
        actor = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:  # no such actor: the usual start
        return None
    try:
        answer: Any = ray.get(actor.info.remote(), timeout=CALL_S)
        info: dict[str, Any] = answer
        if info.get("fingerprint") == agent_fingerprint(settings, node_id):
            answer = ray.get(actor.reattach.remote(token), timeout=CALL_S)
            records: list[ContainerRecord] = answer
            logger.info("took over the agent on Ray node %s that the control plane before "
                        "this one started: %d live container(s)", node_id[:12], len(records))
            return actor, info, records
        why = "it runs another coldsnap version or other settings"
    except Exception as exc:  # dead, stuck, or of a version without these calls
        why = f"it did not answer ({type(exc).__name__}: {exc})"
    logger.warning("stopping the agent an earlier control plane left on Ray node %s (%s); "
                   "its containers end, and a new agent starts there", node_id[:12], why)
    end_agent(actor, name)
    return None


def end_agent(actor: Any, name: str) -> None:
    """Stop an agent (its containers are killed) and wait until its name is free."""
    import ray

    try:
        ray.get(actor.shutdown.remote(), timeout=CALL_S)
    except Exception:  # gone already, or stuck: the kill below ends it
        pass
    ray.kill(actor)
    deadline = time.monotonic() + END_S
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.2)


def draining_nodes() -> set[str]:
    """Node ids Ray is draining (``ray drain-node``: they leave once idle)."""
    import ray._private.state

    try:
        return set(ray._private.state.state.get_draining_nodes())
    except Exception:  # an older Ray, or the GCS restarting: nothing drains now
        logger.debug("could not read Ray's draining nodes", exc_info=True)
        return set()
