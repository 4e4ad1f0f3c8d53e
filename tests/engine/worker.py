"""A stand-in container process for engine tests: JSON lines over the control pipes.

It does what makes snapshots hard: imports numpy, runs threads, optionally binds
an abstract unix socket, touches a heap of a given size, writes a file, and
probes the network before the snapshot.
"""

import json
import os
import socket
import threading
import time

out = os.fdopen(int(os.environ["COLDSNAP_CTRL_OUT_FD"]), "w", buffering=1)
inp = os.fdopen(int(os.environ["COLDSNAP_CTRL_IN_FD"]), "r")

import numpy as np  # noqa: E402

matrix = np.arange(1_000_000, dtype=np.int64)
heap = b"h" * (int(os.environ.get("WORKER_HEAP_MB", "0")) << 20)
ticks = [0, 0, 0, 0]


def tick(i: int) -> None:
    while True:
        ticks[i] += 1
        time.sleep(0.001)


for i in range(4):
    threading.Thread(target=tick, args=(i,), daemon=True).start()

if os.environ.get("WORKER_ABSTRACT"):
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + os.environ["WORKER_ABSTRACT"])
    abstract.listen()

if os.environ.get("WORKER_SOCKETS"):  # open, unconnected inet sockets (CRIU 4.2+ on 6.16+)
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()]
    sockets.append(socket.create_server(("0.0.0.0", 0)))

if os.environ.get("WORKER_MMAP"):  # a file of an image layer mapped, as safetensors does
    import mmap

    with open(os.environ["WORKER_MMAP"], "rb") as mapped_file:
        mapped = mmap.mmap(mapped_file.fileno(), 0, access=mmap.ACCESS_READ)

with open("/tmp/written-before-snapshot", "w") as f:
    f.write(os.environ.get("WORKER_FILE_TEXT", "kept"))


def probe(addr: str) -> str:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            return "ok:" + conn.recv(16).decode()
    except OSError as exc:
        return f"error:{exc}"


def default_gateway() -> str:
    for row in open("/proc/net/route").read().splitlines()[1:]:
        fields = row.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return ""


def listen() -> int:
    """Answer "hi" on a TCP port of every address; returns the port."""
    server = socket.create_server(("0.0.0.0", 0))

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            conn.sendall(b"hi")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


ready = {"ready": True, "pid": os.getpid()}
if os.environ.get("WORKER_PROBE"):
    ready["probe"] = probe(os.environ["WORKER_PROBE"])
out.write(json.dumps(ready) + "\n")

for line in inp:
    cmd = json.loads(line)
    if cmd["op"] == "state":
        before = list(ticks)
        time.sleep(0.05)
        reply = {
            "sum": int(matrix.sum()),
            "heap_mb": len(heap) >> 20,
            "threads_alive": sum(a > b for a, b in zip(ticks, before, strict=True)),
            "file": open("/tmp/written-before-snapshot").read(),
            "env": os.environ.get("WORKER_AFTER", ""),
            "mapped": bytes(mapped[:8]).decode() if os.environ.get("WORKER_MMAP") else "",
        }
    elif cmd["op"] == "read":
        try:
            reply = {"data": open(cmd["path"]).read()}
        except OSError as exc:
            reply = {"error": str(exc)}
    elif cmd["op"] == "write":
        try:
            with open(cmd["path"], "w") as target:
                target.write(cmd.get("data", ""))
            reply = {"written": True}
        except OSError as exc:
            reply = {"error": str(exc)}
    elif cmd["op"] == "gateway":
        reply = {"gateway": default_gateway()}
    elif cmd["op"] == "probe":
        reply = {"probe": probe(cmd["addr"])}
    elif cmd["op"] == "listen":
        reply = {"port": listen()}
    else:
        reply = {"error": f"unknown op {cmd['op']}"}
    out.write(json.dumps(reply) + "\n")
