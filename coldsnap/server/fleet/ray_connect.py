"""Connecting the control plane to a Ray cluster, within a bounded time.

``ray.init`` against an address nobody answers waits for minutes with only Ray's own
warnings, and a SIGTERM meanwhile waits too (Ray's handler runs once it returns). So
``connect`` first opens a TCP connection to the GCS address (``ray://HOST:PORT``)
and fails within ``REACH_S`` naming the address and what to check; then it runs
``ray.init`` in a thread and waits for it at most ``CONNECT_S``, in short waits the
main thread's signal handlers run between (SIGINT and SIGTERM stop it promptly).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from coldsnap.engine import EngineUnavailable
from coldsnap.server.fleet.ray_agents import NAMESPACE

REACH_S = 8.0  # the TCP connect to the GCS address
CONNECT_S = 60.0  # ray.init once the address answers (a loaded cluster is slow)


def connect(address: str, reach_s: float = REACH_S, connect_s: float = CONNECT_S) -> None:
    """``ray.init`` on ``address`` ("auto", or the GCS's "HOST:PORT"); EngineUnavailable
    saying what to check when the cluster can't be reached in time."""
    import ray

    if address != "auto":
        reach(address, reach_s)
    done, failed = threading.Event(), []

    def init() -> None:
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                     configure_logging=False)
        except BaseException as exc:  # told to the waiting thread
            failed.append(exc)
        finally:
            done.set()

    logging.getLogger("ray._private.worker").addFilter(_no_sigterm_warning)
    threading.Thread(target=init, daemon=True, name="ray-connect").start()
    deadline = time.monotonic() + connect_s
    while not done.wait(0.2):
        if time.monotonic() > deadline:
            raise EngineUnavailable(
                f"the Ray cluster at {address} did not accept this control plane within "
                f"{connect_s:g} s: check that `ray status --address {address}` answers "
                "there, and that this machine runs the cluster's Ray and Python versions")
    if failed:
        raise EngineUnavailable(f"could not join the Ray cluster at {address}: "
                                f"{type(failed[0]).__name__}: {failed[0]}") from failed[0]


def _no_sigterm_warning(record: logging.LogRecord) -> bool:
    """Ray warns that it set no SIGTERM handler off the main thread: ours is the default
    (the process ends), which is what the wait needs."""
    return not str(record.msg).startswith("SIGTERM handler is not set")


def reach(address: str, timeout: float) -> None:
    """Open and close a TCP connection to ``address`` ("HOST:PORT"); EngineUnavailable
    naming it and what to check when that fails within ``timeout`` s."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EngineUnavailable(f"--cluster ray://{address}: the address must be HOST:PORT, "
                                "the GCS address `ray start --head` prints (port 6379 by "
                                "default)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else str(exc)
        raise EngineUnavailable(
            f"can't reach the Ray cluster's GCS at {address} (--cluster ray://{address}): "
            f"{why} within {timeout:g} s. Check that `ray start --head` runs on {host}, "
            f"that {port} is the port it printed (6379 by default), and that no firewall "
            "stands between this machine and it") from None
