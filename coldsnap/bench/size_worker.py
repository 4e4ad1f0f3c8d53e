"""A worker that touches WORKER_HEAP_MB of heap, says ready, then answers pings."""

import os

from coldsnap._runtime.memory import advise_hugepages
from coldsnap.wire.container import CTRL_IN_ENV, CTRL_OUT_ENV

heap = b"h" * (int(os.environ["WORKER_HEAP_MB"]) << 20)
if os.environ.get("WORKER_THP", "1") == "1":
    advise_hugepages()
out = os.fdopen(int(os.environ[CTRL_OUT_ENV]), "wb", buffering=0)
inp = os.fdopen(int(os.environ[CTRL_IN_ENV]), "rb")
out.write(b"ready\n")
for _line in inp:
    out.write(b"pong\n")
