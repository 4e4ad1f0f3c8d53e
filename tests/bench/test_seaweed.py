"""The benchmark's S3 store (SeaweedFS, ``weed mini``): its files stay under its own root,
so ``cleanup()`` leaves nothing of it in /tmp."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from coldsnap.bench.seaweed import PORT_FLAGS, Seaweed, WeedMissing, new_prefix, port_flags

TMP = Path("/tmp")


def _ports(pid: int) -> set[str]:
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return {m.group(1) for arg in argv if (m := re.fullmatch(r"-[\w.]*port[\w.]*=(\d+)", arg))}


def _tmp_entries_held_open(pid: int, root: Path) -> set[str]:
    """The top-level /tmp entries (other than its root) whose files ``pid`` has open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        if target.parent != target and target.is_relative_to(TMP) and len(target.parts) > 2:
            top = target.parts[2]
            if top != root.name:
                held.add(top)
    return held


def test_cleanup_leaves_nothing_of_this_weed_in_tmp() -> None:
    before = set(os.listdir(TMP))
    store = Seaweed()
    try:
        try:
            store.start()
        except WeedMissing as exc:
            pytest.skip(str(exc))
        assert store.proc is not None
        pid = store.proc.pid
        key = f"{new_prefix()}/hello"
        store.put(key, b"hello")
        assert store.get(key) == b"hello"
        ports, held = _ports(pid), _tmp_entries_held_open(pid, store.root)
    finally:
        store.cleanup()
    new = set(os.listdir(TMP)) - before
    # Other processes (other weeds too) write to /tmp meanwhile: only names that carry
    # this weed's pid or one of its ports, or that it held files open in, are its own.
    mine = {name for name in new
            if name in held or name == store.root.name
            or re.search(rf"\b{pid}\b", name)
            or (("weed" in name) and any(port in name for port in ports))}
    assert not mine, f"weed mini left these in /tmp: {sorted(mine)}"


def test_weeds_admin_port_leaves_room_for_the_port_its_worker_dials() -> None:
    # weed's plugin worker dials the admin port + 10000: above 55535 that is no port.
    for _ in range(200):
        flags = dict(flag.lstrip("-").split("=") for flag in port_flags())
        assert int(flags["admin.port"]) + 10000 < 65536, flags
        assert set(flags) == set(PORT_FLAGS)
