"""Calls through from_name from a separate process: results, errors, spawn, map, payloads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server()


@pytest.fixture(scope="module", autouse=True)
def deployed(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "square.py"))
    srv.cli("deploy", str(APPS / "exit_hook.py"))


def test_function_remote_map_spawn(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
        "print(sq.remote(3))\n"
        "print(list(sq.map(range(6))))\n"
        "call = sq.spawn(11)\n"
        "print(call.get(timeout=60))\n"
        "big = coldsnap.Function.from_name('test-square', 'big')\n"
        "print([len(b) for b in big.starmap([(2,), (3,)])])\n"
    ).stdout.splitlines()
    assert out == ["9", "[0, 1, 4, 9, 16, 25]", "121", "[2, 3]"]


def test_class_method_from_name(srv: ServerHandle) -> None:
    result = srv.python(
        "import coldsnap\n"
        "W = coldsnap.Cls.from_name('test-exit-hook', 'Worker')\n"
        "print(W().work.remote(1), W().work.remote(41))\n"
    )
    assert result.stdout.split() == ["2", "42"]


def test_user_exception_keeps_type_and_remote_traceback(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap, traceback\n"
        "f = coldsnap.Function.from_name('test-square', 'fail')\n"
        "try:\n"
        "    f.remote('nope')\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__, '|', exc, '|', 'Remote traceback' in ''.join(\n"
        "        getattr(exc, '__notes__', [])) or 'Remote traceback' in str(exc))\n"
        "k = coldsnap.Function.from_name('test-square', 'fail_builtin')\n"
        "try:\n"
        "    k.remote('missing')\n"
        "except KeyError as exc:\n"
        "    print('KeyError', exc)\n"
    ).stdout.splitlines()
    assert out == ["SquareError | refusing: nope | True", "KeyError 'missing'"]


def test_large_result(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "big = coldsnap.Function.from_name('test-square', 'big')\n"
        "data = big.remote(30_000_000)\n"
        "print(len(data), data[:2])\n"
    ).stdout
    assert out.split() == ["30000000", "b'ZZ'"]


def test_unknown_app_function_and_method(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "from coldsnap.client import Client\n"
        "from coldsnap.wire.errors import NotFoundError\n"
        "from coldsnap.wire.serialization import dumps_args\n"
        "conn = Client.default()\n"
        "for app, tag, method in [('nope', 'f', None), ('test-square', 'nope', None),\n"
        "                         ('test-exit-hook', 'Worker', 'nope')]:\n"
        "    try:\n"
        "        conn.call(app, tag, method, dumps_args((), {}))\n"
        "    except NotFoundError as exc:\n"
        "        print(exc)\n"
    ).stdout.splitlines()
    assert out[0].startswith("no app named 'nope' is deployed")
    assert "coldsnap deploy" in out[0]
    assert out[1].startswith("app 'test-square' has no function or class 'nope'; it has: big")
    assert out[2] == "class test-exit-hook/Worker has no method 'nope'; its methods are: work"
