"""A worker that touches WORKER_HEAP_MB of heap, says ready, then answers pings."""

import os

from coldsnap._runtime.memory import advise_hugepages

heap = b"h" * (int(os.environ["WORKER_HEAP_MB"]) << 20)
if os.environ.get("WORKER_THP", "1") == "1":
    advise_hugepages()
out = os.fdopen(int(os.environ["COLDSNAP_CTRL_OUT_FD"]), "wb", buffering=0)
inp = os.fdopen(int(os.environ["COLDSNAP_CTRL_IN_FD"]), "rb")
out.write(b"ready\n")
for _line in inp:
    out.write(b"pong\n")
