"""What every handle that calls a deployed function shares (``_Invocable``: remote,
spawn, map and the rest), and the checks ``Function`` and ``Cls`` both make."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import cloudpickle

from coldsnap import _calls
from coldsnap._aio import with_aio, with_aio_iter
from coldsnap.app_objects import override_refs
from coldsnap.function_call import FunctionCall, _client
from coldsnap.unsupported import missing_attribute
from coldsnap.wire import ops, serialization, web
from coldsnap.wire.cloud_options import take_cloud_options
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions

if TYPE_CHECKING:
    from coldsnap.app import App

MAP_WINDOW = _calls.MAP_WINDOW


class _Invocable:
    """What Function and a class's method handle share: remote, spawn, map."""

    def __init__(self, app: App | None, app_name: str | None, tag: str, method: str | None):
        self._app = app
        self._app_name = app_name
        self._method = method
        self.tag = tag
        self._variant: dict[str, Any] | None = None  # a class instance's (wire/variant.py)

    @property
    def app_name(self) -> str:
        # Read at call time: `coldsnap run` sets app._deployed_as after import.
        if self._app is not None:
            return self._app.deployed_name
        assert self._app_name is not None
        return self._app_name

    def _dumps_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return serialization.dumps_args(args, kwargs, _app_module_name(self._app))

    @with_aio
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run in a container and return the result (raises the remote exception);
        ``await f.remote.aio(...)`` in async code."""
        self._refuse_generator("remote")
        blob = _client().call(
            self.app_name, self.tag, self._method, self._dumps_args(args, kwargs), None,
            **self._variant_field())
        return cloudpickle.loads(blob)

    @with_aio_iter
    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Run a generator function in a container and iterate over the values it yields,
        each as soon as it is yielded (``async for x in f.remote_gen.aio(...)`` too)."""
        return _calls.stream_items(_client(), self.app_name, self.tag, self._method,
                                   self._dumps_args(args, kwargs), self._variant)

    @with_aio
    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall[Any]:
        """Start a call without waiting; ``.get()`` on the result waits for it."""
        self._refuse_generator("spawn")
        call_id = _client().spawn(
            self.app_name, self.tag, self._method, self._dumps_args(args, kwargs),
            **self._variant_field())
        return FunctionCall(call_id)

    @with_aio_iter
    def map(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
        wrap_returned_exceptions: bool = True,
    ) -> Iterator[Any]:
        """Call once per input (zipped like ``map()``) and yield results in input order,
        or as they finish with ``order_outputs=False``.

        With ``return_exceptions=True`` a failed input yields its exception
        instead of stopping the iteration.
        """
        del wrap_returned_exceptions  # Modal's; the exception itself is what is given
        if not iterables:
            raise InvalidError(f"{self._describe()}.map() needs at least one iterable of inputs.")
        return self._run_many(zip(*iterables, strict=False), kwargs, order_outputs,
                              return_exceptions)

    @with_aio_iter
    def starmap(
        self,
        input_iterator: Iterable[Sequence[Any]],
        *,
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
        wrap_returned_exceptions: bool = True,
    ) -> Iterator[Any]:
        """Like ``map``, but each input is a sequence of positional arguments:
        ``f.starmap([(1, 2), (3, 4)])`` calls ``f(1, 2)`` and ``f(3, 4)``."""
        del wrap_returned_exceptions
        return self._run_many(iter(input_iterator), kwargs, order_outputs, return_exceptions)

    @with_aio
    def for_each(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None,
                 ignore_exceptions: bool = False) -> None:
        """Call once per input and wait for all, discarding the results; the first
        exception is raised unless ``ignore_exceptions``."""
        for _ in self.map(*iterables, kwargs=kwargs, order_outputs=False,
                          return_exceptions=ignore_exceptions):
            pass

    @with_aio
    def spawn_map(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None
                  ) -> None:
        """Start one call per input and return without waiting for any (their results
        are not kept for a caller: use ``spawn`` for calls whose result you want)."""
        if not iterables:
            raise InvalidError(f"{self._describe()}.spawn_map() needs at least one iterable "
                               "of inputs.")
        self._refuse_generator("spawn_map")
        for args in zip(*iterables, strict=False):
            self.spawn(*args, **(kwargs or {}))

    def _run_many(self, inputs: Iterator[Sequence[Any]], kwargs: dict[str, Any] | None,
                  order_outputs: bool, return_exceptions: bool) -> Iterator[Any]:
        self._refuse_generator("map")
        return _calls.run_many(self.spawn, inputs, kwargs, order_outputs, return_exceptions)

    def _variant_field(self) -> dict[str, Any]:
        """Absent for a function or a class's default instance."""
        return {"variant": self._variant} if self._variant else {}

    def _refuse_generator(self, how: str) -> None:
        """A generator function's values come from remote_gen only (as in Modal); checked
        here when the code is at hand, else by the container."""
        code = self._local_code()
        if code is not None and (inspect.isgeneratorfunction(code)
                                 or inspect.isasyncgenfunction(code)):
            raise InvalidError(f"{self._describe()} is a generator function: call "
                               f"{self._describe()}.remote_gen(...) to iterate over the values "
                               f"it yields (.{how}() can't return them)")

    def _local_code(self) -> Callable[..., Any] | None:
        return None

    def get_web_url(self) -> str | None:
        """The URL of this function's (or method's) web endpoint on the server's HTTP
        gateway, or None when it has none. The app must be deployed."""
        info = _client().request(ops.LOOKUP, app=self.app_name, tag=self.tag)[0]
        url = info.get("web_urls", {}).get(self._method or self.tag)
        return web.usable_url(str(url)) if url else None

    def _describe(self) -> str:
        return self.tag + (f".{self._method}" if self._method else "")


def _missing(owner: str, name: str, kind: str) -> NoReturn:
    """Modal's attributes a handle lacks name themselves as not supported yet."""
    from coldsnap.unsupported import (
        MODAL_CLS_ATTRIBUTES,
        MODAL_FUNCTION_ATTRIBUTES,
    )

    if name.startswith("__"):  # pickling and copying probe these
        raise AttributeError(name)
    names = MODAL_FUNCTION_ATTRIBUTES if kind == "function" else MODAL_CLS_ATTRIBUTES
    missing_attribute(owner, name, names)


def _check_names(where: str, app_name: object, name: object) -> None:
    if not (isinstance(app_name, str) and app_name and isinstance(name, str) and name):
        raise InvalidError(
            f"{where}(app_name, name) takes two non-empty strings, got "
            f"({app_name!r}, {name!r}), e.g. {where}('sentence-transformers', 'Embedder')."
        )


def _app_module_name(app: App | None) -> str | None:
    """The name this process imported the app's file under, if it did (not as a
    script): the container answers to it, so the app's values go by reference."""
    if app is None:
        return None
    code: list[object] = [f.raw_f for f in app.registered_functions.values()]
    code += [c.user_cls for c in app.registered_classes.values()]
    modules = {getattr(obj, "__module__", None) for obj in code}
    if len(modules) != 1:
        return None
    name = modules.pop()
    return name if name and name != "__main__" and name in sys.modules else None


def _overrides(where: str, given: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``with_options(**options)`` on top of earlier overrides ``given`` (``to_dict()``
    form), checked; Modal's cloud-only keywords are ignored, as in decorators."""
    options = override_refs(where, options)
    take_cloud_options(where, options)
    checked = FunctionOptions.create(where, **options).to_dict()
    # to_dict() leaves out some options at their defaults (startup_timeout=None, volumes={})
    return {**given, **{name: checked.get(name, options[name]) for name in options}}
