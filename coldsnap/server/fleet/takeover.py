"""A restarted control plane and the containers it finds: adopt or stop each.

A Ray fleet's agents outlive their control plane (ray_agents.py), so the one that
starts next finds their live containers (``Fleet.found``). ``wire_pools`` makes
every new pool claim the ready containers of its function version (``Pool.adopt``:
they serve its next calls without a boot) and every boot leave its labels with
its host (labels.py). ``settle`` runs once the apps of the earlier run are picked
up: it makes the pools of the versions still deployed (each claims its own) and
stops every container nobody claimed (its exit hooks run), saying why.

Nothing of this runs on a single host: there the containers end with the server.
"""

from __future__ import annotations

import logging

from coldsnap.server.boot import Boot, BootKind
from coldsnap.server.deploys import DEPLOYED, Deploys
from coldsnap.server.errors import ApiError
from coldsnap.server.fleet.fleet import Fleet
from coldsnap.server.fleet.labels import ContainerLabels, FoundContainer
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.pool import Pool, PoolContext
from coldsnap.wire.variant import Variant

logger = logging.getLogger(__name__)


def wire_pools(ctx: PoolContext, fleet: Fleet) -> None:
    """New pools adopt the containers found for them; boots leave their labels."""
    ctx.adopt = lambda pool: adopt_into(pool, fleet)
    ctx.booted = lambda fn, boot: fleet.label(boot.worker.id, labels_of(fn, boot))


def labels_of(fn: FunctionSpec, boot: Boot) -> ContainerLabels:
    worker = boot.worker
    return ContainerLabels(fn.app, fn.version, fn.tag, fn.variant, str(boot.kind),
                           worker.boot_id, dict(boot.timings), dict(worker.web_ports),
                           variant_data=dict(fn.variant_data))


def adopt_into(pool: Pool, fleet: Fleet) -> None:
    """Hand ``pool`` the found containers of its function version."""
    fn = pool.fn
    for container, labels in fleet.claim(fn.app, fn.version, fn.tag, fn.variant):
        if not pool.adopt(container, BootKind(labels.kind), labels.timings,
                          labels.web_ports, labels.boot_id):
            logger.warning("container %s of %s was found after a restart, but its pool takes "
                           "no more containers: stopped", container.id, labels.label)
            container.kill()


def settle(fleet: Fleet, deploys: Deploys) -> None:
    """Adopt the found containers of deployed versions into their pools; stop the rest."""
    for found in fleet.found():
        if found.labels is not None and not_adoptable(found, deploys) is None:
            try:
                variant = Variant.from_dict(found.labels.variant_data)
                deploys.pool(found.labels.app, found.labels.tag, variant)  # it claims it
            except (ApiError, ValueError) as exc:  # e.g. the tag left the version
                logger.warning("could not make the pool of %s: %s", found.describe(), exc)
    for found in fleet.found():
        fleet.stop_found(found, not_adoptable(found, deploys) or "its pool did not take it")


def not_adoptable(found: FoundContainer, deploys: Deploys) -> str | None:
    """Why a found container is not adopted; None when it is."""
    labels = found.labels
    if labels is None:
        return "it was still booting when the control plane before this one stopped"
    if labels.variant and not labels.variant_data:
        return "it serves a class variant that an older coldsnap booted without its parameters"
    try:
        state, version = deploys.state(labels.app)
    except ApiError:
        return f"app {labels.app!r} is no longer deployed"
    if state != DEPLOYED:
        return f"app {labels.app!r} is stopped"
    if version != labels.version:
        return (f"version {labels.version[:12]} of app {labels.app!r} is no longer deployed "
                f"(the app's version is {version[:12]})")
    return None
