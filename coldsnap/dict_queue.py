"""``coldsnap.Dict`` and ``coldsnap.Queue``: Modal's distributed key-value map and FIFO
queue, kept in the server's database (docs/objects.md).

Both work from clients and from inside functions (over the container's control
pipe), and pickle into arguments: a function given a Dict uses the same one.
``from_name`` touches no network: the first use does, so an app may create them
at import time, in the snapshot phase too. Example::

    stats = coldsnap.Dict.from_name("stats", create_if_missing=True)
    stats["runs"] = stats.get("runs", 0) + 1

    with coldsnap.Queue.ephemeral() as q:
        q.put_many([1, 2, 3])
        assert q.get_many(3) == [1, 2, 3]
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import cloudpickle

from coldsnap._aio import with_aio, with_aio_iter
from coldsnap.wire import objects as contract
from coldsnap.wire import ops
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.names import APP_NAME_RULE, is_app_name

if TYPE_CHECKING:
    from coldsnap.client import Client

ObjectT = TypeVar("ObjectT", bound="_Object")
_KEY_PROTOCOL = 4  # fixed: a key pickles to the same bytes in every process


def _client() -> Client:
    from coldsnap.client import Client

    return Client.default()


class _Object:
    """A named Dict or Queue on the server."""

    _kind: ClassVar[str]

    def __init__(self, name: str, create_if_missing: bool = False) -> None:
        self.name = name
        self._create_if_missing = create_if_missing

    @property
    def object_id(self) -> str:
        return f"{self._kind}:{self.name}"

    @classmethod
    def from_name(cls: type[ObjectT], name: str, *, environment_name: str | None = None,
                  create_if_missing: bool = False, client: Any = None) -> ObjectT:
        """The object with this name (Modal's signature). Nothing is sent until its first
        use, which raises ``coldsnap.exception.NotFoundError`` if it does not exist and
        ``create_if_missing`` is False."""
        if not is_app_name(name):
            raise InvalidError(f"{cls.__name__} name {name!r} is invalid: use {APP_NAME_RULE}")
        return cls(name, create_if_missing)

    @classmethod
    @contextlib.contextmanager
    def _ephemeral(cls: type[ObjectT]) -> Iterator[ObjectT]:
        header, _ = _client().request(ops.OBJECT, kind=cls._kind, action="create_ephemeral")
        obj = cls(str(header["name"]))
        try:
            yield obj
        finally:
            _client().request(ops.OBJECT, kind=cls._kind, name=obj.name, action="delete",
                              allow_missing=True)

    @classmethod
    def delete(cls, name: str, *, allow_missing: bool = False,
               environment_name: str | None = None, client: Any = None) -> None:
        """Delete the named object and its contents (irreversible)."""
        _client().request(ops.OBJECT, kind=cls._kind, name=name, action="delete",
                          allow_missing=allow_missing)

    def _call(self, action: str, values: list[bytes] | None = None, **fields: Any
              ) -> tuple[dict[str, Any], list[bytes]]:
        blob = contract.pack(values) if values is not None else None
        header, reply = _client().request(ops.OBJECT, blob, kind=self._kind, name=self.name,
                                          action=action,
                                          create_if_missing=self._create_if_missing, **fields)
        return header, contract.unpack(reply)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.from_name({self.name!r})"


def _dump(value: Any) -> bytes:
    return cloudpickle.dumps(value)


def _dump_key(key: Any) -> bytes:
    return cloudpickle.dumps(key, protocol=_KEY_PROTOCOL)


def _load(blob: bytes) -> Any:
    return cloudpickle.loads(blob)


class Dict(_Object):
    """A distributed dict: keys and values are anything cloudpickle can pickle; keys
    compare by their pickled bytes (use str, int, tuples of them and the like)."""

    _kind = contract.DICT

    @classmethod
    def ephemeral(cls, data: Mapping[Any, Any] | None = None, *, client: Any = None,
                  environment_name: str | None = None) -> contextlib.AbstractContextManager[Dict]:
        """A nameless Dict that is deleted when the ``with`` block ends::

            with coldsnap.Dict.ephemeral({"a": 1}) as d:
                d["b"] = 2
        """
        @contextlib.contextmanager
        def filled() -> Iterator[Dict]:
            with cls._ephemeral() as obj:
                if data:
                    obj.update(data)
                yield obj

        return filled()

    @with_aio
    def get(self, key: Any, default: Any = None) -> Any:
        header, values = self._call("get", [_dump_key(key)])
        return _load(values[0]) if header.get("found") else default

    @with_aio
    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Set ``key``; with ``skip_if_exists`` an existing key is left alone. True if the
        value was written."""
        header, _ = self._call("put", [_dump_key(key), _dump(value)],
                               skip_if_exists=skip_if_exists)
        return bool(header.get("created"))

    @with_aio
    def update(self, other: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
               /, **kwargs: Any) -> None:
        pairs = dict(other or {}, **kwargs)
        self._call("update", [part for key, value in pairs.items()
                              for part in (_dump_key(key), _dump(value))])

    @with_aio
    def pop(self, key: Any) -> Any:
        """Remove ``key`` and return its value; KeyError if it is missing."""
        header, values = self._call("pop", [_dump_key(key)])
        if not header.get("found"):
            raise KeyError(key)
        return _load(values[0])

    @with_aio
    def contains(self, key: Any) -> bool:
        header, _ = self._call("get", [_dump_key(key)])
        return bool(header.get("found"))

    @with_aio
    def len(self) -> int:
        return int(self._call("len")[0]["len"])

    @with_aio
    def clear(self) -> None:
        self._call("clear")

    @with_aio_iter
    def items(self) -> Iterator[tuple[Any, Any]]:
        """The (key, value) pairs, in the order the keys were first put."""
        _, parts = self._call("items")
        return iter([(_load(parts[i]), _load(parts[i + 1])) for i in range(0, len(parts), 2)])

    @with_aio_iter
    def keys(self) -> Iterator[Any]:
        return (key for key, _ in self.items())

    @with_aio_iter
    def values(self) -> Iterator[Any]:
        return (value for _, value in self.items())

    def __getitem__(self, key: Any) -> Any:
        header, values = self._call("get", [_dump_key(key)])
        if not header.get("found"):
            raise KeyError(key)
        return _load(values[0])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __len__(self) -> int:
        return self.len()


class Queue(_Object):
    """A distributed FIFO queue of anything cloudpickle can pickle, with independent
    partitions (``partition="key"``); a partition is cleared ``partition_ttl`` seconds
    (a day by default) after its last put."""

    _kind = contract.QUEUE

    @classmethod
    def ephemeral(cls, *, client: Any = None, environment_name: str | None = None
                  ) -> contextlib.AbstractContextManager[Queue]:
        """A nameless Queue that is deleted when the ``with`` block ends."""
        return cls._ephemeral()

    @with_aio
    def put(self, v: Any, block: bool = True, timeout: float | None = None, *,
            partition: str | None = None, partition_ttl: int = 24 * 3600) -> None:
        """Add ``v`` at the end (the queue has no size limit: ``block`` and ``timeout``
        never wait)."""
        self.put_many([v], block, timeout, partition=partition, partition_ttl=partition_ttl)

    @with_aio
    def put_many(self, vs: list[Any], block: bool = True, timeout: float | None = None, *,
                 partition: str | None = None, partition_ttl: int = 24 * 3600) -> None:
        self._call("put", [_dump(v) for v in vs], partition=partition,
                   partition_ttl=partition_ttl)

    @with_aio
    def get(self, block: bool = True, timeout: float | None = None, *,
            partition: str | None = None) -> Any:
        """The next item. Blocking (the default) waits for one, at most ``timeout``
        seconds, then raises ``queue.Empty``; ``block=False`` returns None at once if
        there is none."""
        values = self._get(1, block, timeout, partition)
        return values[0] if values else None

    @with_aio
    def get_many(self, n_values: int, block: bool = True, timeout: float | None = None, *,
                 partition: str | None = None) -> list[Any]:
        """Up to ``n_values`` items; blocking waits for at least one, as ``get``;
        ``block=False`` returns [] if there is none."""
        if not (isinstance(n_values, int) and n_values >= 1):
            raise InvalidError(f"Queue.get_many(n_values) takes an integer >= 1, "
                               f"not {n_values!r}")
        return self._get(n_values, block, timeout, partition)

    def _get(self, count: int, block: bool, timeout: float | None,
             partition: str | None) -> list[Any]:
        if timeout is not None and not (isinstance(timeout, int | float) and timeout >= 0):
            raise InvalidError(f"Queue.get(timeout=...) takes seconds >= 0 or None, "
                               f"not {timeout!r}")
        if not block:
            return [_load(v) for v in self._call("get", n=count, partition=partition)[1]]
        # Each request waits a bounded time (wire/objects.py); longer waits ask again.
        step = min(contract.MAX_BLOCK_S, _client().settings.client_timeout_s / 2)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = step if deadline is None else max(0.0, deadline - time.monotonic())
            _, values = self._call("get", n=count, wait=min(step, left), partition=partition)
            if values:
                return [_load(v) for v in values]
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty()

    @with_aio
    def len(self, *, partition: str | None = None, total: bool = False) -> int:
        """How many items the partition holds; ``total``: all partitions together."""
        return int(self._call("len", partition=partition, total=total)[0]["len"])

    @with_aio
    def clear(self, *, partition: str | None = None, all: bool = False) -> None:
        """Remove the partition's items; ``all``: every partition's."""
        if partition is not None and all:
            raise InvalidError("Queue.clear() takes partition= or all=True, not both")
        self._call("clear", partition=partition, all=all)

    @with_aio_iter
    def iterate(self, *, partition: str | None = None,
                item_poll_timeout: float = 0.0) -> Iterator[Any]:
        """The items in order, left in place; at the end it waits up to
        ``item_poll_timeout`` seconds for more before it stops."""
        after = 0
        idle_since = time.monotonic()
        while True:
            header, values = self._call("peek", after=after, partition=partition)
            if values:
                after = int(header["ids"][-1])
                idle_since = time.monotonic()
                yield from (_load(v) for v in values)
            elif time.monotonic() - idle_since >= item_poll_timeout:
                return
            else:
                time.sleep(min(0.1, item_poll_timeout))
