"""Fetch's writes into the staged files: pure logic on temp files."""

from __future__ import annotations

import os
import random
from pathlib import Path

from coldsnap.server.remote_store.fetch import _Writes


def test_chunks_land_in_their_places_whatever_order_they_come_in(tmp_path: Path) -> None:
    rng = random.Random(3)
    pieces = [rng.randbytes(rng.randint(1, 50)) for _ in range(3000)]  # past one pwritev
    data = b"".join(pieces)
    offsets = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    fds = [os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600) for name in "ab"]
    try:
        writes = _Writes()
        order = list(range(len(pieces)))
        rng.shuffle(order)
        for i in order:  # each piece goes to both files, as a chunk found twice does
            writes.add([(fds[0], offsets[i]), (fds[1], len(data) - offsets[i] - len(pieces[i]))],
                       pieces[i])
        writes.add([(fds[0], len(data) + 10)], b"after a hole")
        writes.flush()
    finally:
        for fd in fds:
            os.close(fd)
    assert (tmp_path / "a").read_bytes() == data + bytes(10) + b"after a hole"
    assert (tmp_path / "b").read_bytes() == b"".join(reversed(pieces))
