"""``coldsnap.Dict`` and ``coldsnap.Queue`` with a real server: from clients and from
inside containers, persistence across a restart, blocking gets woken by puts."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time

import pytest

import coldsnap
from coldsnap.client import Client
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu


@pytest.fixture
def client(server: ServerHandle) -> Client:
    """The process-wide client, pointed at the test's server."""
    conn = Client(server.settings)
    Client._default = conn
    yield conn
    Client._default = None
    conn.close()


def test_dict_methods_from_a_client(client: Client) -> None:
    d = coldsnap.Dict.from_name("scores", create_if_missing=True)
    d["a"] = 1
    assert d.put("b", [2, 2]) is True
    assert d.put("b", "kept?", skip_if_exists=True) is False
    d.update({"c": 3}, d=4)
    assert d["a"] == 1 and d.get("b") == [2, 2] and d.get("zz", "dflt") == "dflt"
    assert "c" in d and not d.contains("zz")
    assert len(d) == 4 == d.len()
    assert list(d.keys()) == ["a", "b", "c", "d"]
    assert list(d.values()) == [1, [2, 2], 3, 4]
    assert d.pop("a") == 1
    with pytest.raises(KeyError):
        d.pop("a")
    del d["b"]
    with pytest.raises(KeyError):
        d["b"]
    assert dict(d.items()) == {"c": 3, "d": 4}
    d.clear()
    assert len(d) == 0


def test_dict_and_queue_methods_have_aio_forms(client: Client) -> None:
    async def use() -> tuple[object, ...]:
        with coldsnap.Dict.ephemeral({"a": 1}) as d, coldsnap.Queue.ephemeral() as q:
            assert await d.put.aio("b", 2) is True
            await q.put_many.aio([1, 2, 3])
            return (await d.get.aio("a"), await d.len.aio(), [k async for k in d.keys.aio()],
                    await q.get.aio(), await q.get_many.aio(5), await q.len.aio())

    assert asyncio.run(use()) == (1, 2, ["a", "b"], 1, [2, 3], 0)


def test_more_waiting_aio_gets_than_cpus_do_not_starve_the_put(client: Client) -> None:
    """Modal's misc/queue_simple.py: 20 ``get.aio()`` wait, then ``put_many.aio()`` must
    still run (on the loop's default executor, cpu_count + 4 threads, it never did)."""
    getters = 4 * ((os.cpu_count() or 1) + 4)

    async def use(q: coldsnap.Queue) -> list[object]:
        tasks = [asyncio.create_task(q.get.aio(timeout=60)) for _ in range(getters)]
        await asyncio.sleep(0.5)
        await asyncio.wait_for(q.put_many.aio(list(range(getters))), timeout=30)
        return sorted(await asyncio.wait_for(asyncio.gather(*tasks), timeout=60))

    with coldsnap.Queue.ephemeral() as q:
        assert asyncio.run(use(q)) == list(range(getters))


def test_a_missing_dict_is_not_found_and_says_how_to_create_it(client: Client) -> None:
    d = coldsnap.Dict.from_name("never-made")  # nothing sent yet
    with pytest.raises(coldsnap.exception.NotFoundError) as caught:
        d["x"]
    assert "no Dict named 'never-made'" in str(caught.value)
    assert "create_if_missing=True" in str(caught.value)
    with pytest.raises(coldsnap.exception.InvalidError, match="Queue name 'a/b' is invalid"):
        coldsnap.Queue.from_name("a/b")


def test_queue_fifo_partitions_and_nonblocking_gets(client: Client) -> None:
    with coldsnap.Queue.ephemeral() as q:
        q.put("first")
        q.put_many([2, 3])
        q.put("elsewhere", partition="p1")
        assert q.len() == 3 and q.len(total=True) == 4
        assert list(q.iterate()) == ["first", 2, 3]  # left in place
        assert q.get() == "first"
        assert q.get_many(5) == [2, 3]
        assert q.get(block=False) is None
        assert q.get_many(2, block=False) == []
        assert q.get(partition="p1") == "elsewhere"
        q.put_many([1, 2], partition="p2")
        q.clear(partition="p2")
        assert q.len(partition="p2") == 0
        name = q.name
    with pytest.raises(coldsnap.exception.NotFoundError):  # deleted with its block
        coldsnap.Queue(name).len()


def test_a_blocking_get_times_out_with_queue_empty(client: Client) -> None:
    with coldsnap.Queue.ephemeral() as q:
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=1.0)
        assert 0.9 <= time.monotonic() - start < 15


def test_a_blocking_get_wakes_on_a_put_from_another_process(
        client: Client, server: ServerHandle) -> None:
    q = coldsnap.Queue.from_name("wake-me", create_if_missing=True)
    q.clear()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=60)))
    start = time.monotonic()
    waiter.start()
    time.sleep(1.0)
    server.python("import coldsnap; coldsnap.Queue.from_name('wake-me').put('hello')")
    waiter.join(60)
    assert got == ["hello"]
    assert time.monotonic() - start < 30  # woken by the put, not by the timeout


def test_named_objects_survive_a_server_restart_ephemeral_ones_do_not(
        client: Client, server: ServerHandle) -> None:
    d = coldsnap.Dict.from_name("kept", create_if_missing=True)
    d["k"] = {"nested": (1, 2)}
    q = coldsnap.Queue.from_name("kept-q", create_if_missing=True)
    q.put_many(["x", "y"])
    block = coldsnap.Dict.ephemeral()
    ephemeral = block.__enter__()  # never exited: as if the client had crashed
    ephemeral["gone"] = 1
    client.close()
    server.restart()
    assert coldsnap.Dict.from_name("kept")["k"] == {"nested": (1, 2)}
    assert coldsnap.Queue.from_name("kept-q").get_many(5) == ["x", "y"]
    with pytest.raises(coldsnap.exception.NotFoundError, match="ephemeral Dict .* was deleted"):
        ephemeral.len()
    listed = server.cli("dict", "ls").stdout
    assert "kept" in listed and "ephemeral-" not in listed
    assert server.cli("dict", "get", "kept", "k").stdout.strip() == "{'nested': (1, 2)}"
    assert server.cli("queue", "len", "kept-q").stdout.strip() == "0"
    block.__exit__(None, None, None)


def test_containers_use_dicts_and_queues(server_factory: type[ServerHandle]) -> None:
    require_criu()
    server = server_factory(engine="criu").start()
    server.cli("deploy", str(APPS / "objects_app.py"))
    out = server.python(
        "import threading, time, coldsnap\n"
        "record = coldsnap.Function.from_name('test-objects', 'record')\n"
        "print(record.remote('a', 1), record.remote('b', 2))\n"
        "results = coldsnap.Dict.from_name('test-results')\n"
        "jobs = coldsnap.Queue.from_name('test-jobs')\n"
        "print(sorted(results.items()), jobs.get_many(5, partition='done'))\n"
        # A container blocks in get; a put from another container wakes it.
        "waiting = coldsnap.Function.from_name('test-objects', 'wait_for_job').spawn(60)\n"
        "time.sleep(2)\n"
        "coldsnap.Function.from_name('test-objects', 'put_job').remote('job-1')\n"
        "print(waiting.get(timeout=60))\n"
        "with coldsnap.Dict.ephemeral({'given': 1}) as d:\n"
        "    print(coldsnap.Function.from_name('test-objects', 'use_given').remote(d),\n"
        "          d['from-container'])\n"
        "print(repr(coldsnap.Function.from_name('test-objects', 'wait_for_job').remote(0.5)))\n",
        check=False)
    lines = out.stdout.splitlines()
    assert lines[:4] == ["1 2", "[('a', 1), ('b', 2)] [1, 2]", "job-1",
                         "['from-container', 'given'] True"], out.stdout + out.stderr
    assert "queue.Empty" in out.stderr or "Empty" in out.stderr, out.stderr
