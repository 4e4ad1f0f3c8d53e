"""The socket API's op names: what a request header's ``OP`` field says to do.

docs/server.md describes each op's fields and reply; ``server/api.py`` has one
handler per op (``HANDLERS``), and ``client.py``, the CLI and the benchmark send
them. A container's ``request`` messages (``wire/control.py``) carry these too.
Example::

    client.request(ops.APP_STATS, app="my-app")
"""

from __future__ import annotations

# Fields every request header has.
OP = "op"
TOKEN = "token"  # not in a container's requests: its pipe is its own
# The longest wait (``timeout``, ``wait``) a request may ask for: a week.
MAX_WAIT_S = 7 * 24 * 3600.0

PING = "ping"
SERVER_STOP = "server_stop"
DEPLOY = "deploy"
CALL = "call"
SPAWN = "spawn"
GET = "get"
CANCEL = "cancel"  # a spawned call: drop it if queued, stop its container if it runs
CALL_GRAPH = "call_graph"  # call_id: the tree of calls it is in (wire/call_graph.py)
LOOKUP = "lookup"
APPS_LS = "apps_ls"
APP_STOP = "app_stop"
APP_DRAIN = "app_drain"
APP_STATS = "app_stats"
LOGS = "logs"
SNAPSHOTS_LS = "snapshots_ls"
SNAPSHOT_INSPECT = "snapshot_inspect"
SNAPSHOT_RM = "snapshot_rm"
SNAPSHOTS_GC = "snapshots_gc"
SNAPSHOTS_VERIFY = "snapshots_verify"
SNAPSHOTS_WHY = "snapshots_why"  # app, function (optional): snapshot_why.py
TOKEN_CREATE = "token_create"
TOKEN_LS = "token_ls"
TOKEN_RM = "token_rm"
METRICS = "metrics"  # the Prometheus metrics, as /metrics serves them (docs/metrics.md)
DASHBOARD_LOGIN = "dashboard_login"  # a one-time login URL of the web dashboard
OBJECT = "object"  # a Dict's or a Queue's action (wire/objects.py)
# Volumes (docs/volumes-and-secrets.md): by ``name``; file ops take a ``path``.
VOLUME_CREATE = "volume_create"
VOLUME_LIST = "volume_list"
VOLUME_DELETE = "volume_delete"
VOLUME_LISTDIR = "volume_listdir"
VOLUME_READ = "volume_read"
VOLUME_WRITE = "volume_write"
VOLUME_REMOVE = "volume_remove"
# Secrets: values go in, never come back out.
SECRET_CREATE = "secret_create"
SECRET_LIST = "secret_list"
SECRET_DELETE = "secret_delete"
# Sandboxes (docs/sandboxes.md; wire/sandbox.py has the rest of their contract).
SANDBOX_CREATE = "sandbox_create"
SANDBOX_EXEC = "sandbox_exec"
SANDBOX_READ = "sandbox_read"  # process_id, stream, offset, wait -> blob, eof
SANDBOX_WRITE = "sandbox_write"  # process_id, eof; blob: bytes for its stdin
SANDBOX_WAIT = "sandbox_wait"  # process_id (None: the sandbox), timeout -> returncode
SANDBOX_TERMINATE = "sandbox_terminate"
SANDBOX_GET = "sandbox_get"  # by sandbox_id, or by app and name
SANDBOX_LIST = "sandbox_list"
SANDBOX_TAGS = "sandbox_tags"  # tags: set them (None: only read them)
