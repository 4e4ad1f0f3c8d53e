"""The call API against a real server: .aio variants, generators (remote_gen), map's
options, spawn_map, for_each, FunctionCall.gather/from_id/cancel, Retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coldsnap.server.calls import Call
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.retries import Retries
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server

PRELUDE = (
    "import asyncio, time, coldsnap\n"
    "def fn(name): return coldsnap.Function.from_name('test-call-api', name)\n"
)


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server()


@pytest.fixture(scope="module", autouse=True)
def deployed(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "call_api.py"))


def run(srv: ServerHandle, code: str, timeout: float = 180.0) -> list[str]:
    return srv.python(PRELUDE + code, timeout=timeout).stdout.splitlines()


def test_aio_variants_from_async_code(srv: ServerHandle) -> None:
    out = run(srv, (
        "async def main():\n"
        "    sq = fn('square')\n"
        "    print(await sq.remote.aio(5))\n"
        "    print([v async for v in sq.map.aio([1, 2, 3])])\n"
        "    print([v async for v in sq.starmap.aio([(4,), (6,)])])\n"
        "    call = await sq.spawn.aio(7)\n"
        "    print(await call.get.aio(timeout=60))\n"
        "    calls = [sq.spawn(i) for i in (2, 3)]\n"
        "    print(await coldsnap.FunctionCall.gather.aio(*calls))\n"
        "    print(await asyncio.gather(sq.remote.aio(8), sq.remote.aio(9)))\n"
        "asyncio.run(main())\n"))
    assert out == ["25", "[1, 4, 9]", "[16, 36]", "49", "[4, 9]", "[64, 81]"]


def test_a_function_awaits_others_inside_its_container(srv: ServerHandle) -> None:
    assert run(srv, "print(fn('calls_others_async').remote(3))\n") == ["[9, 1, 4, 0, 1, 2]"]


def test_remote_gen_streams_items_as_they_are_produced(srv: ServerHandle) -> None:
    out = run(srv, (
        "t0 = time.monotonic(); seen = []\n"
        "for item in fn('count').remote_gen(3, pause=3.0):\n"
        "    seen.append((item, time.monotonic() - t0))\n"
        "end = time.monotonic() - t0\n"
        "print([i for i, _ in seen])\n"
        "print(seen[0][1] < end - 4.0, round(seen[0][1], 1), round(end, 1))\n"))
    assert out[0] == "[0, 1, 2]"
    # The generator sleeps 3 s after each item: the first item came >= 6 s before the end.
    assert out[1].startswith("True"), out


def test_remote_gen_of_async_generators_and_aio(srv: ServerHandle) -> None:
    out = run(srv, (
        "print(list(fn('count_async').remote_gen(3)))\n"
        "async def main():\n"
        "    return [v async for v in fn('count').remote_gen.aio(4)]\n"
        "print(asyncio.run(main()))\n"
        "print(fn('streams_from_inside').remote(3))\n"))
    assert out == ["[0, 10, 20]", "[0, 1, 2, 3]", "[0, 1, 2]"]


def test_a_generator_that_raises_gives_its_items_then_the_error(srv: ServerHandle) -> None:
    out = run(srv, (
        "got = []\n"
        "try:\n"
        "    for item in fn('yield_then_fail').remote_gen():\n"
        "        got.append(item)\n"
        "except RuntimeError as exc:\n"
        "    print(got, exc)\n"))
    assert out == ["['first'] failed after one item"]


def test_remote_on_a_generator_and_remote_gen_on_a_plain_function_say_which(
        srv: ServerHandle) -> None:
    out = run(srv, (
        "for how in (lambda: fn('count').remote(2), lambda: list(fn('square').remote_gen(2))):\n"
        "    try:\n"
        "        how()\n"
        "    except coldsnap.exception.InvalidError as exc:\n"
        "        print(exc)\n"))
    assert out[0] == ("count is a generator function: call count.remote_gen(...) to iterate "
                      "over the values it yields (.remote() can't return them)")
    assert out[1] == ("square is not a generator function: call square.remote(...) instead "
                      "of .remote_gen(...)")


def test_map_unordered_return_exceptions_for_each_spawn_map(srv: ServerHandle) -> None:
    out = run(srv, (
        "print(list(fn('sleep_for').map([6.0, 0.1], order_outputs=False)))\n"
        "results = list(fn('fail_on_three').map([1, 3, 5], return_exceptions=True))\n"
        "print(results[0], type(results[1]).__name__, results[1], results[2])\n"
        "print(fn('square').for_each([1, 2, 3]))\n"
        "try:\n"
        "    fn('fail_on_three').for_each([3])\n"
        "except ValueError as exc:\n"
        "    print('for_each raised', exc)\n"
        "fn('fail_on_three').for_each([3], ignore_exceptions=True)\n"
        "print(fn('square').spawn_map([1, 2]))\n"))
    assert out == ["[0.1, 6.0]", "1 ValueError bad input 3 5", "None",
                   "for_each raised bad input 3", "None"]


def test_gather_and_from_id(srv: ServerHandle) -> None:
    out = run(srv, (
        "sq = fn('square')\n"
        "ids = [sq.spawn(i).object_id for i in (1, 2, 3)]\n"
        "print(coldsnap.FunctionCall.gather(*map(coldsnap.FunctionCall.from_id, ids)))\n"
        "try:\n"
        "    coldsnap.FunctionCall.gather(sq.spawn(2), fn('fail_on_three').spawn(3))\n"
        "except ValueError as exc:\n"
        "    print('gather raised', exc)\n"))
    assert out == ["[1, 4, 9]", "gather raised bad input 3"]


def test_cancel_a_running_and_a_queued_call(srv: ServerHandle) -> None:
    out = run(srv, (
        "f = fn('one_at_a_time')\n"
        "running, queued = f.spawn(60.0), f.spawn(60.0)\n"
        "time.sleep(3.0)\n"
        "t0 = time.monotonic()\n"
        "queued.cancel()\n"
        "running.cancel()\n"
        "for call in (queued, running):\n"
        "    try:\n"
        "        call.get(timeout=30)\n"
        "    except coldsnap.exception.InputCancellation as exc:\n"
        "        print(type(exc).__name__, 'was cancelled' in str(exc))\n"
        "print(time.monotonic() - t0 < 30)\n"
        "print(f.remote(0.1))\n"  # a new container serves the next call
        "done = fn('square').spawn(3); print(done.get(timeout=60))\n"
        "done.cancel(); print(done.get())\n"))  # an ended call keeps its result
    assert out == ["InputCancellation True", "InputCancellation True", "True", "0.1",
                   "9", "9"]


def test_retries_policy_sets_the_delays(srv: ServerHandle) -> None:
    out = run(srv, (
        "times = fn('flaky').remote()\n"
        "gaps = [b - a for a, b in zip(times, times[1:])]\n"
        "print(len(times), all(0.2 <= g < 0.9 for g in gaps), gaps)\n"))
    assert out[0].startswith("3 True"), out  # 0.25 s apart, not Modal's default 1 s, 2 s


def test_retries_delays_and_validation() -> None:
    policy = Retries(max_retries=4, backoff_coefficient=3.0, initial_delay=0.5, max_delay=5.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 5.0]
    call = Call("app", "f", None, b"", timeout_s=1, retries=4, retry_policy=policy)
    call.attempts = 2
    assert call.retry_delay == 1.5
    call.attempts = 5
    assert call.retry_delay is None
    with pytest.raises(InvalidError, match="backoff_coefficient must be a number from 1 to 10"):
        Retries(max_retries=1, backoff_coefficient=0.5)
    with pytest.raises(TypeError):
        Retries(3)  # type: ignore[misc]  # keyword-only, as Modal's


def test_options_take_retries_and_round_trip_them() -> None:
    options = FunctionOptions.create("@app.function()", retries=Retries(max_retries=2))
    again = FunctionOptions.from_dict(options.to_dict())
    assert again.retries == Retries(max_retries=2) and again.retry_policy.max_retries == 2
    assert FunctionOptions.create("@app.function()", retries=3).to_dict()["retries"] == 3
    with pytest.raises(InvalidError, match="or a coldsnap.Retries"):
        FunctionOptions.create("@app.function()", retries="3")


def test_cls_parameters_are_typed_with_defaults_and_get_containers_of_their_own(
        srv: ServerHandle) -> None:
    out = run(srv, (
        "G = coldsnap.Cls.from_name('test-call-api', 'Greeter')\n"
        "print(G(name='ada').greet.remote())\n"
        "print(G(name='bo', times=2, loud=True, tail=b'!').greet.remote())\n"
        "a1, a2 = G(name='ada').container.remote(), G(name='ada').container.remote()\n"
        "b = G(name='bo').container.remote()\n"
        "print(a1 == a2, a1 != b)\n"
        "for bad in (lambda: G(name='x', times='2').greet.remote(), lambda: G().greet.remote(),\n"
        "            lambda: G(nam='x').greet.remote(), lambda: G('x')):\n"
        "    try:\n"
        "        bad()\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, '|', str(exc).splitlines()[0][:200])\n"))
    assert out[:3] == ["hello ada", "HELLO BO HELLO BO!", "True True"], out
    assert "parameter 'times' is a int, not str ('2')" in out[3], out
    assert "Greeter() needs the parameter 'name' (str): Greeter(name=...)" in out[4], out
    assert "got unknown parameter(s) nam; its parameters are: name, times, loud, tail" in (
        out[5]), out
    assert out[6] == ("InvalidError | Greeter(...) takes its parameters by keyword "
                      "(Greeter(x=1)), declared in the class as `x: int = coldsnap.parameter()`")


def test_cls_with_options_runs_with_the_overridden_options(srv: ServerHandle) -> None:
    out = run(srv, (
        "G = coldsnap.Cls.from_name('test-call-api', 'Greeter')\n"
        "print(G(name='ada').nap.remote(2.0))\n"
        "quick = G.with_options(timeout=1, startup_timeout=120)\n"
        "try:\n"
        "    quick(name='ada').nap.remote(4.0)\n"
        "except coldsnap.exception.FunctionTimeoutError as exc:\n"
        "    print('timed out:', 'timeout of 1 s' in str(exc))\n"
        "try:\n"
        "    G.with_options(timeout=-1)\n"
        "except coldsnap.exception.InvalidError as exc:\n"
        "    print(exc)\n"
        "try:\n"
        "    G.with_options(cpus=2)\n"
        "except coldsnap.exception.InvalidError as exc:\n"
        "    print(str(exc)[:60])\n"))
    assert out == ["2.0", "timed out: True",
                   "Greeter.with_options(): timeout must be a positive number of seconds or "
                   "None, not -1.",
                   "Greeter.with_options() got unknown option(s) cpus. Valid opt"], out


def test_parameters_bind_locally_with_the_class_at_hand() -> None:
    import coldsnap
    from coldsnap.parameter import bind_parameters

    app = coldsnap.App("local-params")

    @app.cls()
    class Model:
        size: int = coldsnap.parameter(default=3)
        name: str = coldsnap.parameter()

        @coldsnap.method()
        def describe(self) -> str:
            return f"{self.name}:{self.size}"

    assert bind_parameters(Model.user_cls, {"name": "m"}) == {"size": 3, "name": "m"}
    assert Model(name="m").describe.local() == "m:3"  # type: ignore[attr-defined]
    assert Model(name="m", size=3)._variant == {"params": {"name": "m"}, "options": {}}
    with pytest.raises(InvalidError, match="parameter 'size' is a int, not bool"):
        Model(name="m", size=True)
    with pytest.raises(InvalidError, match="a parameter's default must be an int, str"):
        coldsnap.parameter(default=1.5)


def test_function_with_options_runs_with_the_overridden_options(srv: ServerHandle) -> None:
    out = run(srv, (
        "f = coldsnap.Function.from_name('test-call-api', 'sleep_for')\n"
        "quick = f.with_options(timeout=1, startup_timeout=120, region='us-east')\n"
        "print(quick.remote(0.1))\n"
        "try:\n"
        "    quick.remote(4.0)\n"
        "except coldsnap.exception.FunctionTimeoutError as exc:\n"
        "    print('timed out:', 'timeout of 1 s' in str(exc))\n"
        "print(f.remote(1.5))\n"
        "print(quick.with_options(timeout=30).remote(1.5))\n"
        "try:\n"
        "    f.with_options(gpu='TPU')\n"
        "except coldsnap.exception.InvalidError as exc:\n"
        "    print(str(exc)[:57])\n"))
    assert out == ["0.1", "timed out: True", "1.5", "1.5",
                   "sleep_for.with_options(): gpu='TPU' is not a GPU coldsnap"], out
