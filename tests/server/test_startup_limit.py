"""StartupClock: which limit a boot's startup gets, what it has left, and the words
when it runs out (the end-to-end cases are in test_startup_timeout.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, cast

import pytest

from coldsnap.server.functions import FunctionSpec
from coldsnap.server.startup_limit import StartupClock, StartupTimedOut
from coldsnap.server.worker import BootTimedOut
from coldsnap.wire.options import FunctionOptions


def clock(server_limit_s: float = 300.0, **options: Any) -> StartupClock:
    fn = SimpleNamespace(options=FunctionOptions(**options), label="app/Model")
    return StartupClock(cast(FunctionSpec, fn), server_limit_s)


def times_out(left: float) -> None:
    raise BootTimedOut(f"no ready within {left} s", "c-1")


@pytest.mark.parametrize(("options", "limit"), [
    ({}, 300.0),
    ({"timeout": 5}, 5.0),
    ({"timeout": 5, "startup_timeout": 60}, 60.0),
    ({"startup_timeout": 900}, 300.0),  # the server's cap
])
def test_the_limit_is_startup_timeout_else_timeout_within_the_servers(
        options: dict[str, Any], limit: float) -> None:
    assert clock(**options).limit_s == limit


def test_the_waits_of_one_container_share_its_limit() -> None:
    c = clock(timeout=10)
    given: list[float] = []
    c.spend(given.append)
    c.spent_s = 4.0  # as if the handshake took 4 s
    c.spend(given.append)
    assert given[0] == 10.0 and math.isclose(given[1], 6.0, abs_tol=0.1)
    c.restart()  # a new container runs the imports anew
    c.spend(given.append)
    assert math.isclose(given[2], 10.0, abs_tol=0.1)


@pytest.mark.parametrize(("options", "words"), [
    ({"timeout": 5}, "took over 5 s; container c-1 was stopped (timeout=5 bounds startup too; "
                     "startup_timeout= sets startup's limit apart): raise startup_timeout="),
    ({"timeout": 5, "startup_timeout": 60}, "took over 60 s; container c-1 was stopped "
                                            "(startup_timeout=60): raise startup_timeout="),
    ({"startup_timeout": 900}, "took over 300 s; container c-1 was stopped (the server's "
                               "COLDSNAP_BOOT_TIMEOUT_S=300; it caps startup_timeout=900): "
                               "raise COLDSNAP_BOOT_TIMEOUT_S"),
    ({}, "(the server's COLDSNAP_BOOT_TIMEOUT_S=300; the function sets no startup_timeout= "
         "or timeout=): raise COLDSNAP_BOOT_TIMEOUT_S"),
])
def test_running_out_names_the_function_the_limit_and_its_knob(
        options: dict[str, Any], words: str) -> None:
    with pytest.raises(StartupTimedOut) as info:
        clock(**options).spend(times_out)
    assert str(info.value).startswith(
        "container startup of app/Model (imports and @enter hooks) ")
    assert words in str(info.value)
