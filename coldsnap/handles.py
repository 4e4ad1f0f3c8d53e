"""Handles users call: ``Function``, ``Cls`` (and its methods), ``FunctionCall``.

``@app.function()`` returns a Function and ``@app.cls()`` a Cls; both can also
be looked up by name from any process that can reach the server::

    square = coldsnap.Function.from_name("squares", "square")
    print(square.remote(4), list(square.map(range(10))))

    Embedder = coldsnap.Cls.from_name("sentence-transformers", "Embedder")
    print(Embedder().run.remote(["hi"]))

Remote calls go through ``coldsnap.client.Client.default()``; it is
imported when first needed, so defining an app never touches the network.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

import cloudpickle

from coldsnap import _calls
from coldsnap._aio import static_with_aio, with_aio, with_aio_iter
from coldsnap.app_objects import override_refs
from coldsnap.call_graph import InputInfo
from coldsnap.markers import MarkerFlag, find_partials
from coldsnap.parameter import apply_parameters, bind_parameters, class_parameters
from coldsnap.unsupported import MODAL_FUNCTION_CALL_ATTRIBUTES, ModalClass, missing_attribute
from coldsnap.wire import ops, serialization, web
from coldsnap.wire.cloud_options import take_cloud_options
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.variant import PARAM_TYPES, Variant
from coldsnap.wire.web import WebEndpoint

if TYPE_CHECKING:
    from coldsnap.app import App
    from coldsnap.client import Client

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAP_WINDOW = _calls.MAP_WINDOW


def _client() -> Client:
    from coldsnap.client import Client

    return Client.default()


class FunctionCall(Generic[R], metaclass=ModalClass):
    """A spawned call; ``get()`` waits for its result (or raises its exception).

    Its id (``object_id``) can be kept and used from any process, also after the server
    restarted: the result stays fetchable for ``COLDSNAP_CALL_RESULT_TTL_S`` (7 days)
    after the call ended::

        call_id = coldsnap.Function.from_name("squares", "square").spawn(4).object_id
        ...
        print(coldsnap.FunctionCall.from_id(call_id).get(timeout=5))
    """

    def __init__(self, call_id: str, client: Client | None = None) -> None:
        self.object_id = call_id
        self._client = client

    @staticmethod
    def from_id(function_call_id: str, client: Client | None = None) -> FunctionCall[Any]:
        """The call with this id (Modal's signature); ``client``: the default one if None."""
        return FunctionCall(function_call_id, client)

    @with_aio
    def get(self, timeout: float | None = None) -> R:
        """The call's return value; raises the remote exception with its traceback.

        ``coldsnap.exception.OutputExpiredError`` once the result expired; a
        ``ServerError`` of kind ``interrupted`` when the server stopped before the call
        ended (call it again)."""
        if timeout is not None:
            if not (isinstance(timeout, int | float) and not isinstance(timeout, bool)
                    and math.isfinite(timeout) and timeout >= 0):
                raise InvalidError(f"FunctionCall.get(timeout=...) takes seconds >= 0 or None,"
                                   f" not {timeout!r}")
            # A wait longer than the server takes (a week) is as good as forever here.
            timeout = min(float(timeout), ops.MAX_WAIT_S)
        client = self._client or _client()
        result: R = cloudpickle.loads(client.get(self.object_id, timeout))
        return result

    @with_aio
    def cancel(self, terminate_containers: bool = False) -> None:
        """Cancel the call: a queued one never runs; a running one's container is
        stopped (coldsnap can't interrupt a call inside its container, so
        ``terminate_containers`` is always in effect). ``get()`` then raises
        ``coldsnap.exception.InputCancellation``; a call that already ended keeps its
        result."""
        client = self._client or _client()
        client.request(ops.CANCEL, call_id=self.object_id)

    @with_aio
    def get_call_graph(self) -> list[InputInfo]:
        """The tree of inputs this call is in, from its root: the input that made it (a
        call's, or a web request's) and every call each made, with their status
        (``coldsnap.call_graph``)."""
        client = self._client or _client()
        header, _ = client.request(ops.CALL_GRAPH, call_id=self.object_id)
        return [InputInfo.from_dict(root) for root in header.get("graph") or ()]

    @static_with_aio
    def gather(*function_calls: FunctionCall[Any]) -> list[Any]:
        """The results of ``function_calls``, in their order; raises the first
        exception one of them raised::

            squares = coldsnap.FunctionCall.gather(*(square.spawn(i) for i in range(4)))
        """
        return [call.get() for call in function_calls]

    def _get_once(self) -> R:
        """``get``, and the server drops the result: ``map`` wants each one once, and
        keeping them all on disk for days would fill it."""
        client = self._client or _client()
        _, blob = client.request(ops.GET, call_id=self.object_id, timeout=None, forget=True)
        result: R = cloudpickle.loads(blob if blob is not None
                                      else serialization.dumps_result(None))
        return result

    def __getattr__(self, name: str) -> Any:
        missing_attribute("coldsnap.FunctionCall", name, MODAL_FUNCTION_CALL_ATTRIBUTES)

    def __repr__(self) -> str:
        return f"FunctionCall({self.object_id!r})"


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


class Function(_Invocable, Generic[P, R], metaclass=ModalClass):
    """A deployed function. ``.remote(...)`` runs it in a container, ``.local(...)`` here."""

    def __init__(
        self,
        tag: str,
        options: FunctionOptions | None,
        *,
        app: App | None = None,
        app_name: str | None = None,
        raw_f: Callable[P, R] | None = None,
    ) -> None:
        super().__init__(app, app_name, tag, None)
        self.options = options
        self.raw_f = raw_f
        self.web: tuple[WebEndpoint, ...] = ()  # set by @app.function for a web endpoint
        if raw_f is not None:
            self.__doc__ = raw_f.__doc__
            self.__wrapped__ = raw_f

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Function[..., Any]:
        """The function ``name`` of the deployed app ``app_name``."""
        _check_names("Function.from_name", app_name, name)
        return cls(name, None, app_name=app_name)

    @classmethod
    def lookup(cls, app_name: str, name: str) -> Function[..., Any]:
        """Alias of ``from_name`` (Modal's older spelling)."""
        return cls.from_name(app_name, name)

    @with_aio
    def remote(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in a container and return the result (raises the remote exception);
        ``await f.remote.aio(...)`` in async code."""
        result: R = super().remote(*args, **kwargs)
        return result

    @with_aio
    def spawn(self, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        """Start a call without waiting; ``.get()`` on the result waits for it."""
        call: FunctionCall[R] = super().spawn(*args, **kwargs)
        return call

    def _local_code(self) -> Callable[..., Any] | None:
        return self.raw_f

    def with_options(self, **options: Any) -> Function[P, R]:
        """This function with some options overridden (``cpu=``, ``memory=``, ``gpu=``,
        ``timeout=``, ``retries=``, ...), as ``Cls.with_options``: its calls run in
        containers of their own, with a snapshot of their own::

            big = coldsnap.Function.from_name("etl", "load").with_options(memory=4096)
            big.remote("2024-01")
        """
        copy: Function[P, R] = Function(self.tag, self.options, app=self._app,
                                        app_name=self._app_name, raw_f=self.raw_f)
        given = Variant.from_dict(self._variant).options if self._variant else {}
        overrides = _overrides(f"{self.tag}.with_options()", given, options)
        copy._variant = Variant(options=overrides).to_dict() if overrides else None
        return copy

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process."""
        if self.raw_f is None:
            raise InvalidError(
                f"{self.tag}.local() needs the function's code, but this handle was looked up "
                f"by name ({self.app_name!r}). Import the app's module and call .local() on "
                "the function it defines, or use .remote()."
            )
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidError(
            f"{self.tag} is a coldsnap Function: call {self.tag}.remote(...) to run it in a "
            f"container or {self.tag}.local(...) to run it here."
        )

    def __getattr__(self, name: str) -> Any:
        _missing("coldsnap.Function", name, "function")

    def __repr__(self) -> str:
        return f"Function({self.app_name!r}, {self.tag!r})"


class Cls(Generic[T], metaclass=ModalClass):
    """A deployed class. ``Cls()`` gives an instance whose methods have ``.remote``."""

    def __init__(
        self,
        tag: str,
        options: FunctionOptions | None,
        *,
        app: App | None = None,
        app_name: str | None = None,
        user_cls: type[T] | None = None,
    ) -> None:
        self._app = app
        self._app_name = app_name
        self.tag = tag
        self.options = options
        self.user_cls = user_cls
        self._option_overrides: dict[str, Any] = {}  # with_options(...), to_dict() form
        if user_cls is not None:
            self.__doc__ = user_cls.__doc__

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Cls[Any]:
        """The class ``name`` of the deployed app ``app_name``."""
        _check_names("Cls.from_name", app_name, name)
        return cls(name, None, app_name=app_name)

    @classmethod
    def lookup(cls, app_name: str, name: str) -> Cls[Any]:
        """Alias of ``from_name`` (Modal's older spelling)."""
        return cls.from_name(app_name, name)

    def web_endpoints(self) -> tuple[WebEndpoint, ...]:
        """The endpoints of the class's web-decorated methods (labels default to
        ``<class>-<method>``)."""
        if self.user_cls is None:
            return ()
        return tuple(marker.web.endpoint(name, self.tag, name)
                     for name, marker in find_partials(self.user_cls, MarkerFlag.METHOD).items()
                     if marker.web is not None)

    @property
    def method_names(self) -> list[str] | None:
        """The ``@method()`` names, or None for a class looked up by name."""
        if self.user_cls is None:
            return None
        return list(find_partials(self.user_cls, MarkerFlag.METHOD))

    def __call__(self, *args: Any, **kwargs: Any) -> _ClsInstance:
        """An instance with these parameter values (``coldsnap.parameter()``); each
        distinct set of values gets containers and a snapshot of its own."""
        if args:
            raise InvalidError(
                f"{self.tag}(...) takes its parameters by keyword ({self.tag}(x=1)), "
                "declared in the class as `x: int = coldsnap.parameter()`")
        return _ClsInstance(self, _given_parameters(self, kwargs))

    def with_options(self, **options: Any) -> Cls[T]:
        """This class with some options overridden (``cpu=``, ``memory=``, ``gpu=``,
        ``timeout=``, ``retries=``, ``scaledown_window=``, ...): its calls run in
        containers of their own, with a snapshot of their own."""
        copy: Cls[T] = Cls(self.tag, self.options, app=self._app, app_name=self._app_name,
                           user_cls=self.user_cls)
        copy._option_overrides = _overrides(f"{self.tag}.with_options()",
                                            self._option_overrides, options)
        return copy

    def with_concurrency(self, *, max_inputs: int, target_inputs: int | None = None) -> Cls[T]:
        """This class with other ``@coldsnap.concurrent`` settings (Modal's signature):
        like ``with_options``, its calls run in containers of their own, which take up
        to ``max_inputs`` inputs at once::

            Model = coldsnap.Cls.from_name("llm", "Model").with_concurrency(max_inputs=32)
            Model().generate.remote("hi")
        """
        FunctionOptions().with_concurrency(max_inputs, target_inputs,
                                           where=f"{self.tag}.with_concurrency()")
        copy: Cls[T] = Cls(self.tag, self.options, app=self._app, app_name=self._app_name,
                           user_cls=self.user_cls)
        copy._option_overrides = {**self._option_overrides, "max_inputs": max_inputs,
                                  "target_inputs": target_inputs}
        return copy

    def __getattr__(self, name: str) -> Any:
        _missing("coldsnap.Cls", name, "cls")

    def __repr__(self) -> str:
        return f"Cls({self._app_name or (self._app and self._app.name)!r}, {self.tag!r})"


class _ClsInstance:
    """``Embedder()``: attribute access gives method handles."""

    def __init__(self, cls_handle: Cls[Any], params: dict[str, Any]) -> None:
        self._cls = cls_handle
        self._params = params
        variant = Variant(params, cls_handle._option_overrides)
        self._variant = None if variant.is_default else variant.to_dict()
        self._local_obj: Any = None

    def __getattr__(self, name: str) -> _MethodHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        known = self._cls.method_names
        if known is not None and name not in known:
            raise AttributeError(
                f"{self._cls.tag} has no @coldsnap.method() named {name!r}; "
                f"its methods are: {', '.join(known)}."
            )
        return _MethodHandle(self, name)

    def _local_instance(self) -> Any:
        """The real class, instantiated here once, with its enter hooks run in order."""
        if self._local_obj is None:
            user_cls = self._cls.user_cls
            if user_cls is None:
                raise InvalidError(
                    f"{self._cls.tag}().<method>.local() needs the class's code, but it was "
                    "looked up by name. Import the app's module and use the class it defines."
                )
            from coldsnap.user_code import run_maybe_async  # it imports this module

            obj = user_cls()
            apply_parameters(obj, bind_parameters(user_cls, self._params))
            for flag in (MarkerFlag.ENTER_PRE_SNAPSHOT, MarkerFlag.ENTER_POST_SNAPSHOT):
                for name in find_partials(user_cls, flag):
                    run_maybe_async(getattr(obj, name)())
            self._local_obj = obj
        return self._local_obj


class _MethodHandle(_Invocable):
    def __init__(self, instance: _ClsInstance, name: str) -> None:
        cls_handle = instance._cls
        super().__init__(cls_handle._app, cls_handle._app_name, cls_handle.tag, name)
        self._instance = instance
        self._variant = instance._variant

    def _local_code(self) -> Callable[..., Any] | None:
        user_cls = self._instance._cls.user_cls
        marked = getattr(user_cls, self._method or "", None) if user_cls is not None else None
        return getattr(marked, "raw_f", marked)  # a MarkedFunction's own

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the method on a local instance of the class (enter hooks run first)."""
        assert self._method is not None
        return getattr(self._instance._local_instance(), self._method)(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidError(
            f"{self._describe()} is a coldsnap method: call .remote(...) to run it in a "
            "container or .local(...) to run it here."
        )

    def __repr__(self) -> str:
        return f"<method {self._describe()} of app {self.app_name!r}>"



def _missing(owner: str, name: str, kind: str) -> NoReturn:
    """Modal's attributes a handle lacks name themselves as not supported yet."""
    from coldsnap.unsupported import (
        MODAL_CLS_ATTRIBUTES,
        MODAL_FUNCTION_ATTRIBUTES,
        missing_attribute,
    )

    if name.startswith("__"):  # pickling and copying probe these
        raise AttributeError(name)
    names = MODAL_FUNCTION_ATTRIBUTES if kind == "function" else MODAL_CLS_ATTRIBUTES
    missing_attribute(owner, name, names)
def _given_parameters(cls_handle: Cls[Any], values: dict[str, Any]) -> dict[str, Any]:
    """The parameters to send: checked against the class when its code is here (those
    equal to their defaults left out, so Cls() and Cls(x=<default>) share containers)."""
    user_cls = cls_handle.user_cls
    if user_cls is None:
        for name, value in values.items():
            if type(value) not in PARAM_TYPES:
                raise InvalidError(f"{cls_handle.tag}() parameter {name!r} is a "
                                   f"{type(value).__name__}; parameters are int, str, bool "
                                   "or bytes")
        return dict(values)
    bind_parameters(user_cls, values)  # raises for unknown, missing, mistyped
    defaults = {name: spec.default for name, (_, spec) in class_parameters(user_cls).items()}
    return {name: value for name, value in values.items()
            if not (name in defaults and type(defaults[name]) is type(value)
                    and defaults[name] == value)}


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
    return {**given, **{name: checked[name] for name in options}}
