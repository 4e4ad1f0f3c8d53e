"""``Cls``: the handle of an ``@app.cls`` class, its instances (a variant: parameter
values) and their method handles (``Embedder().run.remote(...)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from coldsnap.invocable import _check_names, _Invocable, _missing, _overrides
from coldsnap.markers import MarkerFlag, find_partials
from coldsnap.parameter import apply_parameters, bind_parameters, class_parameters
from coldsnap.unsupported import ModalClass
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.variant import PARAM_TYPES, Variant
from coldsnap.wire.web import WebEndpoint

if TYPE_CHECKING:
    from coldsnap.app import App

T = TypeVar("T")


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
