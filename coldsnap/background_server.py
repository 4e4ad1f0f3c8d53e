"""The server a client starts in the background when none answers: a detached
``coldsnap serve`` with ``COLDSNAP_EMBEDDED_SERVER=1``, logging to
``<state_dir>/server.log``. ``Client.ensure_server`` drives it; this module starts
one, says why one failed to start, tells when one must be replaced, and when none may
start (a fleet's state dir: its control plane is started by hand). Example::

    started = spawn(settings)
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from coldsnap.settings import EMBEDDED_ENV, Settings
from coldsnap.wire.fleet_mark import fleet_cluster, serve_command


@dataclasses.dataclass(frozen=True)
class Started:
    """A background server just started: its pid (our child), and where its lines begin
    in ``server.log``, which every server of the state dir appends to."""

    pid: int
    log_start: int


def spawn(settings: Settings) -> Started:
    """Start ``coldsnap serve`` in a session of its own."""
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = str(settings.state_dir / "server.log")
    try:
        log_start = os.stat(log).st_size
    except FileNotFoundError:
        log_start = 0
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    argv = [sys.executable, "-m", "coldsnap.cli.main", "serve"]
    env = {**os.environ, EMBEDDED_ENV: "1"}
    pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
    return Started(pid, log_start)


def fleet_refusal(settings: Settings) -> str | None:
    """Why no server is started in the background for these settings: the state dir is
    a fleet's control plane's, or the settings name a cluster. A fleet's control plane
    runs on purpose, where its operator chose, with the store settings and Ray address it
    needs; one a command started on the side would be a single host or a guess. None
    when a background server may start."""
    cluster = fleet_cluster(settings.state_dir)
    if cluster is not None:
        whose = (f"state dir {settings.state_dir} belongs to the control plane of a fleet "
                 f"(cluster {cluster})")
    elif settings.cluster:
        cluster = settings.cluster
        whose = f"COLDSNAP_CLUSTER is set ({cluster}): the server would be a fleet's"
    else:
        return None
    return (f"no coldsnap server answers on {settings.socket_path}, and {whose}; a command "
            f"does not start a fleet's control plane in the background. Start it with "
            f"`{serve_command(cluster)}` (with the COLDSNAP_STORE_URL and other settings "
            "it ran with), then run this command again")


def reap(pid: int) -> None:
    """Collect a dead background server's exit status, so it leaves no zombie behind."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # already reaped (ensure_server saw it exit)
        pass


def start_failure(settings: Settings, started: Started, exited: int | None) -> str:
    """Why a background server did not come up, with the end of what it logged (not
    the lines of the servers before it in the same log)."""
    log = settings.state_dir / "server.log"
    status = "did not answer in time" if exited is None else f"exited with status {exited}"
    try:
        with open(log, "rb") as f:
            if f.seek(0, os.SEEK_END) >= started.log_start:  # else it was cut: show it all
                f.seek(started.log_start)
            else:
                f.seek(0)
            lines = f.read().decode(errors="replace").splitlines()[-20:]
    except OSError as exc:
        return (f"started a coldsnap server in the background but it {status}, and its "
                f"log {log} could not be read ({exc.strerror}); run `coldsnap serve` to "
                "see why it fails")
    if not lines:
        return (f"started a coldsnap server in the background but it {status} before "
                f"writing to {log}; run `coldsnap serve` to see why it fails")
    return (f"started a coldsnap server in the background but it {status}. "
            f"Its last lines in {log}:\n" + "\n".join(lines))


def runs_other_code(ping: dict[str, Any]) -> bool:
    """True for a server that runs other coldsnap code (an update, another checkout);
    one a client started in the background is replaced, one started by hand kept."""
    from coldsnap.identity import coldsnap_fingerprint

    if ping.get("code") in (None, coldsnap_fingerprint()):
        return False
    if not ping.get("embedded") or ping.get("busy"):
        why = "it is busy" if ping.get("embedded") else "it was started by hand"
        print(f"coldsnap: warning: the server (pid {ping.get('pid')}) runs other coldsnap "
              f"code than this client and is kept ({why}); restart it if calls fail",
              file=sys.stderr)
        return False
    return True
