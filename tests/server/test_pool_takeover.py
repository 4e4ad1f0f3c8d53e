"""The pool's side of a fleet's drain and of a control plane restart, with fake
containers (tests/server/test_pool.py): a container whose host drains takes no new
inputs and leaves once its call ended; a container adopted at the pool's start
serves the next call without a boot. And why a found container is not adopted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from coldsnap.server import pool as pool_module
from coldsnap.server.boot import BootKind
from coldsnap.server.fleet.labels import ContainerLabels, FoundContainer
from coldsnap.server.fleet.takeover import not_adoptable
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.logs import LogBook
from coldsnap.server.pool import Pool, PoolContext
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.options import FunctionOptions
from tests.server.test_pool import FakeBooter, FakeDB, FakeWorker, answer, submit, wait_until

VERSION = "v" * 40


@pytest.fixture
def booter(monkeypatch: pytest.MonkeyPatch) -> FakeBooter:
    monkeypatch.setattr(pool_module, "Worker", FakeWorker)
    return FakeBooter()


@pytest.fixture
def make_pool(booter: FakeBooter) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(adopt: Callable[[Pool], None] = lambda pool: None) -> Pool:
        fn = FunctionSpec(app="app", version=VERSION, tag="f", kind="function", methods=(),
                          options=FunctionOptions(), source=b"", image_spec=ImageSpec())
        ctx = PoolContext(booter, FakeDB(), LogBook(echo=False),  # type: ignore[arg-type]
                          lambda header, blob: ({"ok": False}, None), adopt=adopt)
        pools.append(Pool(fn, ctx))
        return pools[-1]

    yield make
    booter.calls_may_end.set()
    for pool in pools:
        pool.stop("the test is over")
        pool.kill()
        wait_until(lambda p=pool: p.finished, "the pool to finish")  # type: ignore[misc]


def test_a_draining_container_finishes_its_call_then_leaves(
        make_pool: Callable[..., Pool], booter: FakeBooter) -> None:
    pool = make_pool()
    booter.calls_may_end.clear()
    first = submit(pool, b"first")
    wait_until(lambda: booter.started == 1 and booter.workers[0].call is not None,
               "the first call to run")
    draining = booter.workers[0]
    draining.container.draining = True  # what Fleet.drain does to its host's containers
    second = submit(pool, b"second")
    wait_until(lambda: booter.started == 2, "a container elsewhere for the second call")
    booter.calls_may_end.set()
    assert answer(first) == b"first"
    assert answer(second) == b"second"
    wait_until(lambda: draining.ended_by == "shutdown", "the drained container to leave")
    assert booter.workers[1].calls_served == 1 and draining.calls_served == 1


def test_an_adopted_container_serves_without_a_boot(
        make_pool: Callable[..., Pool], booter: FakeBooter) -> None:
    adopted: list[bool] = []

    def adopt(pool: Pool) -> None:
        container = SimpleNamespace(id="cs-before", booter=booter, host=None, draining=False)
        adopted.append(pool.adopt(container, BootKind.RESTORED,  # type: ignore[arg-type]
                                  {"boot_s": 0.2}, {}, 7))

    pool = make_pool(adopt)
    assert adopted == [True]
    assert answer(submit(pool, b"hello")) == b"hello"
    assert booter.started == 0  # served by the adopted container
    assert [c["id"] for c in pool.stats()["containers"]] == ["cs-before"]


def _labels(**changes: Any) -> ContainerLabels:
    base = ContainerLabels(app="app", version=VERSION, tag="f", variant="", kind="restored",
                           boot_id=1, timings={}, web_ports={})
    return ContainerLabels.from_dict({**base.to_dict(), **changes})


class FakeDeploys:
    def __init__(self, apps: dict[str, tuple[str, str]]) -> None:
        self.apps = apps

    def state(self, app: str) -> tuple[str, str]:
        from coldsnap.server.errors import ApiError
        from coldsnap.wire.errors import NOT_FOUND

        if app not in self.apps:
            raise ApiError(NOT_FOUND, "no such app")
        return self.apps[app]


@pytest.mark.parametrize(("labels", "apps", "why"), [
    (_labels(), {"app": ("deployed", VERSION)}, None),
    (None, {"app": ("deployed", VERSION)}, "still booting"),
    (_labels(), {}, "app 'app' is no longer deployed"),
    (_labels(), {"app": ("stopped", VERSION)}, "app 'app' is stopped"),
    (_labels(), {"app": ("deployed", "w" * 40)}, "version vvvvvvvvvvvv of app 'app' is no "
                                                 "longer deployed"),
    (_labels(variant="abc"), {"app": ("deployed", VERSION)}, "variant"),
])
def test_why_a_found_container_is_not_adopted(labels: ContainerLabels | None,
                                              apps: dict[str, tuple[str, str]],
                                              why: str | None) -> None:
    found = FoundContainer("vm/1234", "cs-1", labels)
    answer = not_adoptable(found, FakeDeploys(apps))  # type: ignore[arg-type]
    assert answer is None if why is None else (answer is not None and why in answer), answer


def test_labels_travel_as_a_dict() -> None:
    labels = _labels(web_ports={"web": 8000}, cpus=2.0)
    assert ContainerLabels.from_dict({**labels.to_dict(), "later": 1}) == labels
