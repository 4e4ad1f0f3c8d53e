"""The CRIU engine with real CRIU: dump, restore, copies, network, corruption."""

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coldsnap.engine.base import (
    Container,
    DumpFailed,
    RestoreFailed,
    SnapshotDamaged,
    SnapshotMiss,
)
from coldsnap.engine.criu_engine import CriuEngine
from coldsnap.engine.hostkey import host_key

from .conftest import ask, read_line, worker_spec

EXPECTED_SUM = sum(range(1_000_000))


def snapshot(engine: CriuEngine, key: str, **env: str) -> dict:
    container = engine.start(worker_spec(**env))
    ready = read_line(container)
    engine.checkpoint(container, key, labels={"app": "tests", "function": key})
    return ready


def test_dump_and_restore_keeps_numpy_threads_and_files(engine: CriuEngine) -> None:
    snapshot(engine, "numpy-threads")
    info = engine.lookup("numpy-threads")
    assert info is not None and info.size_bytes > 1_000_000 and info.dump_s > 0
    restored = engine.restore("numpy-threads", worker_spec())
    try:
        state = ask(restored, "state")
    finally:
        restored.kill()
    assert state["sum"] == EXPECTED_SUM
    assert state["threads_alive"] == 4
    assert state["file"] == "kept"
    assert restored.timings["restore_s"] > 0


def test_four_concurrent_restores_each_answer(engine: CriuEngine) -> None:
    snapshot(engine, "four-copies")
    with ThreadPoolExecutor(4) as pool:
        copies = list(pool.map(lambda _: engine.restore("four-copies", worker_spec()), range(4)))
    try:
        assert len({c.pid for c in copies}) == 4
        for container in copies:
            assert ask(container, "state")["sum"] == EXPECTED_SUM
    finally:
        for container in copies:
            container.kill()


@pytest.fixture
def host_listener() -> tuple[int, threading.Event]:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"hi")
            conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], stop
    stop.set()


@pytest.fixture(scope="module")
def outside_listener() -> Iterator[str]:
    """"ip:port" of a server on another machine, as containers see it: a network
    namespace behind a veth of its own, reached through the host's routing."""
    index = os.getpid() % 16000
    name, host_if = f"cstest{index}", f"cstv{index}"
    prefix = f"10.214.{index // 64}"
    host_ip, outside_ip = f"{prefix}.{(index % 64) * 4 + 1}", f"{prefix}.{(index % 64) * 4 + 2}"
    setup = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{outside_ip}/30", "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
    ]
    server = None
    try:
        for argv in setup:
            subprocess.run(argv, check=True, capture_output=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", LISTENER],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        yield f"{outside_ip}:{server.stdout.readline().strip()}"
    finally:
        if server is not None:
            server.kill()
            server.communicate()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


LISTENER = """
import socket
server = socket.create_server(("0.0.0.0", 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"hi")
    conn.close()
"""


def test_snapshot_phase_and_restored_copy_both_reach_out(
    engine: CriuEngine, host_listener: tuple[int, threading.Event], outside_listener: str
) -> None:
    port, _ = host_listener
    ready = snapshot(engine, "network", WORKER_PROBE=outside_listener)
    assert ready["probe"] == "ok:hi"
    restored = engine.restore("network", worker_spec())
    try:
        assert ask(restored, "probe", addr=outside_listener)["probe"] == "ok:hi"
        _assert_host_unreachable(restored, port)
    finally:
        restored.kill()


def _assert_host_unreachable(container: Container, port: int) -> None:
    """The host's own services are out of reach: through the veth and on loopback."""
    gateway = ask(container, "gateway")["gateway"]
    assert gateway.startswith("10.213.")
    assert ask(container, "probe", addr=f"{gateway}:{port}")["probe"].startswith("error:")
    # The container's own loopback is not the host's.
    assert ask(container, "probe", addr=f"127.0.0.1:{port}")["probe"].startswith("error:")
    # No IPv6: a link-local address would pass the IPv4 rules.
    assert "eth0" not in ask(container, "read", path="/proc/net/if_inet6").get("data", "")


def test_containers_cannot_reach_each_other(engine: CriuEngine) -> None:
    first = engine.start(worker_spec(snapshot_phase=False))
    second = engine.start(worker_spec(snapshot_phase=False))
    try:
        read_line(first), read_line(second)
        port = ask(first, "listen")["port"]
        gateway = ask(first, "gateway")["gateway"]  # the host's side of first's /30
        first_ip = gateway.rsplit(".", 1)[0] + "." + str(int(gateway.rsplit(".", 1)[1]) + 1)
        assert ask(first, "probe", addr=f"{first_ip}:{port}")["probe"] == "ok:hi"
        assert ask(second, "probe", addr=f"{first_ip}:{port}")["probe"].startswith("error:")
    finally:
        first.kill()
        second.kill()


def test_inet_sockets_open_in_the_snapshot_phase_are_dumped(engine: CriuEngine) -> None:
    # CRIU 4.1 failed here on Linux 6.16+ ("Can't get 1:16 opt"): install-criu.sh takes 4.2.
    snapshot(engine, "inet-sockets", WORKER_SOCKETS="1")
    restored = engine.restore("inet-sockets", worker_spec())
    try:
        assert ask(restored, "state")["sum"] == EXPECTED_SUM
    finally:
        restored.kill()


def test_a_mapped_file_of_an_image_layer_is_dumped_and_restored(
    engine: CriuEngine, tmp_path: Path
) -> None:
    # A model loaded with mmap (safetensors) from a @build layer, the embedder's case.
    layer = tmp_path / "layer"
    (layer / "model").mkdir(parents=True)
    (layer / "model" / "weights.bin").write_bytes(b"weights!" * 4096)
    spec = worker_spec(WORKER_MMAP="/model/weights.bin")
    spec.layers = [layer]
    container = engine.start(spec)
    read_line(container)
    engine.checkpoint(container, "mapped-layer-file")
    restore_spec = worker_spec(WORKER_MMAP="/model/weights.bin", snapshot_phase=False)
    restore_spec.layers = [layer]
    restored = engine.restore("mapped-layer-file", restore_spec)
    try:
        state = ask(restored, "state")
        assert (state["mapped"], state["sum"]) == ("weights!", EXPECTED_SUM)
    finally:
        restored.kill()


def test_two_copies_with_one_abstract_socket_both_run(engine: CriuEngine) -> None:
    snapshot(engine, "abstract", WORKER_ABSTRACT=f"coldsnap-test-{os.getpid()}")
    first = engine.restore("abstract", worker_spec())
    second = engine.restore("abstract", worker_spec())
    try:
        assert ask(first, "state")["sum"] == EXPECTED_SUM
        assert ask(second, "state")["sum"] == EXPECTED_SUM
    finally:
        first.kill()
        second.kill()


def test_truncated_pages_file_is_a_clean_miss_and_quarantined(engine: CriuEngine) -> None:
    snapshot(engine, "truncated")
    info = engine.lookup("truncated")
    assert info is not None
    pages = max((info.path / "images").glob("pages-*.img"), key=lambda p: p.stat().st_size)
    os.truncate(pages, pages.stat().st_size // 2)
    with pytest.raises(SnapshotMiss, match="quarantined"):
        engine.restore("truncated", worker_spec())
    assert engine.lookup("truncated") is None
    quarantined = (engine.store.root / "quarantine").iterdir()
    assert any(p.name.startswith("truncated-") for p in quarantined)


def test_garbage_in_image_fails_restore_with_criu_log(engine: CriuEngine) -> None:
    snapshot(engine, "garbage")
    info = engine.lookup("garbage")
    assert info is not None
    meta = json.loads((info.path / "meta.json").read_text())
    del meta["digests"]  # as made before digests were kept: only CRIU can tell
    (info.path / "meta.json").write_text(json.dumps(meta))
    for image in (info.path / "images").glob("core-*.img"):
        size = image.stat().st_size
        image.write_bytes(b"\xff" * size)
    with pytest.raises(RestoreFailed) as failure:
        engine.restore("garbage", worker_spec())
    assert failure.value.log_tail  # CRIU's own words travel with the error
    assert engine.failure("garbage") is not None
    with pytest.raises(SnapshotMiss):
        engine.restore("garbage", worker_spec())


def test_changed_image_bytes_are_damage_not_failure(engine: CriuEngine) -> None:
    snapshot(engine, "changed")
    info = engine.lookup("changed")
    assert info is not None
    [core] = sorted((info.path / "images").glob("core-*.img"))[:1]
    core.write_bytes(b"\xff" * core.stat().st_size)  # same size, other bytes
    with pytest.raises(SnapshotDamaged) as damaged:
        engine.restore("changed", worker_spec())
    assert damaged.value.file == core.name
    assert f"image file {core.name} does not match its sha256 digest" in str(damaged.value)
    assert engine.lookup("changed") is None and engine.failure("changed") is None
    assert damaged.value.quarantined_to is not None and damaged.value.quarantined_to.is_dir()


def test_a_restore_reports_what_verifying_added(engine: CriuEngine) -> None:
    snapshot(engine, "timed")
    restored = engine.restore("timed", worker_spec())
    try:
        assert ask(restored, "state")["sum"] == EXPECTED_SUM
    finally:
        restored.kill()
    assert restored.timings["verify_hash_s"] > 0
    # What the wait added is at most the hashing (plus the join's own ~0.1 ms: files the
    # store verified before hash in well under a millisecond).
    assert 0 <= restored.timings["verify_s"] <= restored.timings["verify_hash_s"] + 0.002


def test_dump_of_a_dead_container_is_a_typed_error(engine: CriuEngine) -> None:
    container = engine.start(worker_spec())
    read_line(container)
    container.kill()
    with pytest.raises(DumpFailed):
        engine.checkpoint(container, "dead")
    assert engine.lookup("dead") is None
    assert not list((engine.store.root / ".staging").iterdir())


def test_host_key_mismatch_is_a_miss(engine: CriuEngine, criu_settings) -> None:
    snapshot(engine, "other-host")
    other_facts = {**engine.facts, "kernel": "0.0.0-elsewhere"}
    assert host_key(other_facts) != engine.host_key
    elsewhere = CriuEngine(criu_settings, facts=other_facts)
    try:
        assert elsewhere.lookup("other-host") is None
        with pytest.raises(SnapshotMiss, match="no snapshot"):
            elsewhere.restore("other-host", worker_spec())
    finally:
        elsewhere.netns.close()
    assert engine.lookup("other-host") is not None


def test_plain_container_has_outbound_network(
    engine: CriuEngine, host_listener: tuple[int, threading.Event], outside_listener: str
) -> None:
    port, _ = host_listener
    container = engine.start(worker_spec(snapshot_phase=False))
    try:
        read_line(container)
        assert ask(container, "probe", addr=outside_listener)["probe"] == "ok:hi"
        _assert_host_unreachable(container, port)
    finally:
        container.kill()


def test_container_cannot_read_the_state_dir(engine: CriuEngine, criu_settings) -> None:
    secret = Path(criu_settings.state_dir) / "token"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("s3cret")
    container = engine.start(worker_spec(snapshot_phase=False))
    try:
        read_line(container)
        assert "error" in ask(container, "read", path=str(secret))
        assert ask(container, "read", path="/etc/hostname").get("data") is not None
    finally:
        container.kill()


def test_two_concurrent_dumps_of_one_key_leave_one_snapshot(engine: CriuEngine) -> None:
    containers = [engine.start(worker_spec()) for _ in range(2)]
    for container in containers:
        read_line(container)
    with ThreadPoolExecutor(2) as pool:
        infos = list(pool.map(lambda c: engine.checkpoint(c, "racing"), containers))
    assert infos[0].path == infos[1].path  # both callers see the one published snapshot
    assert [p.name for p in engine.store.host_dir.iterdir()].count("racing") == 1
    assert not list((engine.store.root / ".staging").iterdir())  # the loser cleaned up
    copy = engine.restore("racing", worker_spec())
    try:
        assert ask(copy, "state")["sum"] == EXPECTED_SUM
    finally:
        copy.kill()


def test_a_snapshot_made_again_under_one_key_brings_its_own_files(engine: CriuEngine) -> None:
    for text in ("first", "second"):
        snapshot(engine, "remade", WORKER_FILE_TEXT=text)
        copy = engine.restore("remade", worker_spec())
        try:
            assert ask(copy, "state")["file"] == text  # never the cached copy of the old one
        finally:
            copy.kill()
        assert engine.store.delete("remade")


def test_a_used_network_namespace_is_never_handed_out_again(engine: CriuEngine) -> None:
    used = engine.netns.acquire()
    # What a container could have done to it: an extra address.
    subprocess.run(["ip", "-n", used.name, "addr", "add", "10.99.0.1/32", "dev", "lo"],
                   check=True)
    engine.netns.release(used)
    for _ in range(4):
        fresh = engine.netns.acquire()
        addrs = subprocess.run(["ip", "-n", fresh.name, "-o", "addr"], capture_output=True,
                               text=True, check=True).stdout
        assert "10.99.0.1" not in addrs
        engine.netns.release(fresh)


def test_deleting_a_snapshot_keeps_files_of_its_running_copies(engine: CriuEngine) -> None:
    snapshot(engine, "in-use", WORKER_FILE_TEXT="still here")
    copy = engine.restore("in-use", worker_spec())
    try:
        assert engine.store.delete("in-use")
        engine.layers.prune()  # what the next checkpoint does
        assert ask(copy, "state")["file"] == "still here"
    finally:
        copy.kill()
    assert not [p for p in engine.layers.dir.iterdir() if p.suffix == ".source"
                and "in-use" in p.read_text()]  # freed once its last user left


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_MODULE = 12, 21, 16


def _capabilities(container) -> int:
    status = ask(container, "read", path="/proc/self/status")["data"]
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("CapEff:")), 16)


def test_containers_run_without_dangerous_capabilities_under_seccomp(engine: CriuEngine) -> None:
    snapshot(engine, "caps")
    fresh = engine.start(worker_spec(snapshot_phase=False))
    read_line(fresh)
    restored = engine.restore("caps", worker_spec())
    try:
        for container in (fresh, restored):  # a restore keeps the reduced set
            caps = _capabilities(container)
            for cap in (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_MODULE):
                assert not caps & (1 << cap), hex(caps)
            assert caps & 1  # CAP_CHOWN: ordinary root work still goes
            status = ask(container, "read", path="/proc/self/status")["data"]
            assert "Seccomp:\t2" in status  # the filter (seccomp.py) came back too
            reply = ask(container, "write", path="/proc/sys/kernel/core_pattern", data="|/x")
            assert "Read-only file system" in reply.get("error", ""), reply
            assert "error" in ask(container, "read", path="/etc/shadow")
    finally:
        fresh.kill()
        restored.kill()
