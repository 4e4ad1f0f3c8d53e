"""``App``: the registry of an app's functions, classes and local entrypoints.

Example::

    app = coldsnap.App("squares")

    @app.function(enable_memory_snapshot=True)
    def square(x: int) -> int:
        return x * x

    @app.local_entrypoint()
    def main():
        print(square.remote(4))
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from coldsnap import batching, concurrency
from coldsnap.app_objects import AppObjects, default_app_name
from coldsnap.handles import Cls, Function
from coldsnap.image import Image
from coldsnap.markers import (
    MarkedFunction,
    MarkerFlag,
    decorator_name,
    find_partials,
    no_parentheses,
)
from coldsnap.unsupported import ModalClass
from coldsnap.web import WebFunction
from coldsnap.wire.cloud_options import take_cloud_options
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.names import APP_NAME_RULE, is_app_name
from coldsnap.wire.options import FunctionOptions

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

class App(metaclass=ModalClass):
    """A named group of functions and classes that are deployed together."""

    # The server-side name to call: `coldsnap run` deploys an ephemeral copy of
    # the app under another name and sets this; handles read it at call time.
    _deployed_as: str | None = None

    def __init__(self, name: str | None = None, *, image: Image | None = None,
                 secrets: list[Any] | None = None, volumes: dict[str, Any] | None = None
                 ) -> None:
        """``name`` defaults to the app file's name (``squares.py``: ``squares``);
        ``image``, ``secrets`` and ``volumes`` apply to every function and class."""
        if name is None:
            name = default_app_name()
        if not is_app_name(name):
            raise InvalidError(
                f"App name {name!r} is invalid: use {APP_NAME_RULE}, "
                "e.g. coldsnap.App('sentence-transformers')."
            )
        if image is not None and not isinstance(image, Image):
            raise InvalidError(
                f"App(image=...) takes a coldsnap.Image, not {type(image).__name__}; "
                "build one with coldsnap.Image.debian_slim()."
            )
        self.name = name
        self.image = image
        self.objects = AppObjects(volumes, secrets)  # volumes= and secrets=
        self.registered_functions: dict[str, Function[..., Any]] = {}
        self.registered_classes: dict[str, Cls[Any]] = {}
        # tag -> the image= of a function or class that has its own.
        self.images: dict[str, Image] = {}
        # tag -> Modal's cloud-only keywords it was given (wire/cloud_options.py).
        self.cloud_options: dict[str, dict[str, str]] = {}
        self.registered_entrypoints: dict[str, Callable[..., Any]] = {}

    @staticmethod
    def lookup(name: str, *, create_if_missing: bool = False, client: Any = None,
               environment_name: str | None = None) -> App:
        """An App by name, for what is created at run time (``Sandbox.create(app=...)``).
        The server keeps no empty apps, so ``create_if_missing`` changes nothing here."""
        return App(name)

    @property
    def deployed_name(self) -> str:
        """The name the server knows this app by (differs for `coldsnap run`)."""
        return self._deployed_as or self.name

    def function(
        self, _warn_parentheses_missing: object = None, /, **options: Any
    ) -> Callable[[Callable[P, R]], Function[P, R]]:
        """Register a function; options are those of ``FunctionOptions``."""
        if _warn_parentheses_missing is not None:
            raise no_parentheses("@app.function", _warn_parentheses_missing)
        image = _own_image("@app.function()", options)
        cloud = take_cloud_options("@app.function()", options)  # accepted, ignored
        options = self.objects.options_for("@app.function()", options)
        concurrency.refuse_as_option("@app.function()", options)
        batching.refuse_as_option("@app.function()", options)
        opts = FunctionOptions.create("@app.function()", **options)

        def register(f: Callable[P, R]) -> Function[P, R]:
            declared = f.web if isinstance(f, WebFunction) else None
            # @coldsnap.concurrent may sit above or below a web decorator.
            settings = concurrency.take_settings(f)
            if isinstance(f, WebFunction):
                f = f.raw_f
                settings = settings or concurrency.take_settings(f)
            _check_plain_function(f)
            tag = f.__name__
            self._check_name_free("@app.function()", tag)
            if opts.schedule is not None:
                _check_schedulable(f)
            fn_opts = opts if settings is None else concurrency.with_settings(opts, settings)
            fn_opts = batching.with_settings(fn_opts, batching.take_settings(f), "@app.function()")
            handle: Function[P, R] = Function(tag, fn_opts, app=self, raw_f=f)
            if declared is not None:
                handle.web = (declared.endpoint(tag, tag),)
                _check_web_network("@app.function()", opts, tag)
            self.registered_functions[tag] = handle
            self._options_of(tag, image, cloud)
            return handle

        return register

    def cls(
        self, _warn_parentheses_missing: object = None, /, **options: Any
    ) -> Callable[[type[T]], Cls[T]]:
        """Register a class whose ``@method()``s callers invoke remotely."""
        if _warn_parentheses_missing is not None:
            raise no_parentheses("@app.cls", _warn_parentheses_missing)
        image = _own_image("@app.cls()", options)
        cloud = take_cloud_options("@app.cls()", options)  # accepted, ignored
        concurrency.refuse_as_option("@app.cls()", options)
        batching.refuse_as_option("@app.cls()", options)
        if options.get("schedule") is not None:
            raise InvalidError("@app.cls() takes no schedule=: the server runs one function "
                               "on a schedule; put it on an @app.function() that calls the "
                               "class's method")
        options = self.objects.options_for("@app.cls()", options)
        opts = FunctionOptions.create("@app.cls()", **options)

        def register(user_cls: type[T]) -> Cls[T]:
            _check_class(user_cls, opts)
            concurrency.refuse_in_class_body(user_cls)
            tag = user_cls.__name__
            self._check_name_free("@app.cls()", tag)
            settings = concurrency.take_settings(user_cls)
            cls_opts = opts if settings is None else concurrency.with_settings(opts, settings)
            cls_opts = batching.with_settings(cls_opts, batching.class_settings(user_cls),
                                              "@app.cls()")
            handle = Cls(tag, cls_opts, app=self, user_cls=user_cls)
            for endpoint in handle.web_endpoints():
                _check_web_network("@app.cls()", opts, f"{tag}.{endpoint.name}")
                _check_web_parameters(user_cls, f"{tag}.{endpoint.name}")
            self.registered_classes[tag] = handle
            self._options_of(tag, image, cloud)
            return handle

        return register

    def _options_of(self, tag: str, image: Image | None, cloud: dict[str, str]) -> None:
        """Keep what a function or class was given apart from its options."""
        if image is not None:
            self.images[tag] = image
        if cloud:
            self.cloud_options[tag] = cloud

    def local_entrypoint(self, _warn_parentheses_missing: object = None, /) -> Callable[[F], F]:
        """Register the function `coldsnap run` calls on the client after deploying."""
        if _warn_parentheses_missing is not None:
            raise no_parentheses("@app.local_entrypoint", _warn_parentheses_missing)

        def register(f: F) -> F:
            if not callable(f) or isinstance(f, type | Function | Cls | MarkedFunction):
                raise InvalidError(
                    f"@app.local_entrypoint() decorates a plain function, not {f!r}."
                )
            name = f.__name__
            if name in self.registered_entrypoints:
                raise InvalidError(
                    f"@app.local_entrypoint(): app {self.name!r} already has an entrypoint "
                    f"named {name!r}. Rename one of them."
                )
            self.registered_entrypoints[name] = f
            return f

        return register

    def run(self, *, detach: bool = False, client: object = None,
            interactive: bool = False, environment_name: str | None = None
            ) -> AbstractContextManager[App]:
        """A context manager: an ephemeral copy of this app runs while the block does
        (Modal's ``app.run()``; see ``coldsnap.running``)::

            with coldsnap.enable_output(), app.run():
                print(square.remote(4))
        """
        from coldsnap.running import run_app

        return run_app(self, detach=detach)

    def __getattr__(self, name: str) -> Any:
        from coldsnap.unsupported import MODAL_APP_ATTRIBUTES, missing_attribute

        if name.startswith("__"):  # pickling and copying probe these
            raise AttributeError(name)
        missing_attribute("coldsnap.App", name, MODAL_APP_ATTRIBUTES)

    def _check_name_free(self, decorator: str, tag: str) -> None:
        if tag in self.registered_functions or tag in self.registered_classes:
            raise InvalidError(
                f"{decorator}: app {self.name!r} already has a function or class named "
                f"{tag!r}. Names must be unique within an app (callers look them up by name); "
                "rename one of them."
            )

    def __repr__(self) -> str:
        return f"App({self.name!r})"


def _check_schedulable(f: Callable[..., Any]) -> None:
    """A scheduled run passes no arguments: every parameter needs a default."""
    import inspect

    required = [name for name, p in inspect.signature(f).parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise InvalidError(
            f"@app.function(schedule=...): {f.__name__} needs {', '.join(required)}, but a "
            "scheduled run passes no arguments. Give them defaults, or schedule a function "
            "that calls this one with them.")


def _check_web_parameters(user_cls: type, where: str) -> None:
    """A request can't say ``Cls(x=...)``: a class serving web endpoints needs a default
    for every parameter (its requests reach the defaults' containers)."""
    from coldsnap.parameter import class_parameters

    required = [name for name, (_, spec) in class_parameters(user_cls).items()
                if spec.required]
    if required:
        raise InvalidError(
            f"{where} is a web endpoint of a class whose parameter(s) {', '.join(required)} "
            "have no default: an HTTP request can't pass them. Give them defaults "
            "(coldsnap.parameter(default=...)).")


def _check_plain_function(f: object) -> None:
    if isinstance(f, MarkedFunction):
        raise InvalidError(
            f"@app.function() can't register {f.__qualname__}: it is marked "
            f"{decorator_name(f.flags)}, which only works on methods of an @app.cls() class. "
            "Drop that marker, or move the function into a class decorated with @app.cls()."
        )
    if isinstance(f, type):
        raise InvalidError(
            f"@app.function() was applied to the class {f.__name__}: use @app.cls() for classes."
        )
    if isinstance(f, Function | Cls) or not callable(f):
        raise InvalidError(
            f"@app.function() decorates a plain function, not {f!r}; "
            "apply it once, directly above `def`."
        )


def _check_class(user_cls: object, opts: FunctionOptions) -> None:
    if not isinstance(user_cls, type):
        raise InvalidError(
            f"@app.cls() decorates a class, not {user_cls!r}; for a function use @app.function()."
        )
    name = user_cls.__name__
    if not find_partials(user_cls, MarkerFlag.METHOD):
        raise InvalidError(
            f"@app.cls(): class {name} has no @coldsnap.method(), so callers could not invoke "
            "anything on it. Mark the methods callers use with @coldsnap.method()."
        )
    pre_snapshot = find_partials(user_cls, MarkerFlag.ENTER_PRE_SNAPSHOT)
    if pre_snapshot and not opts.enable_memory_snapshot:
        hooks = ", ".join(f"{name}.{hook}" for hook in pre_snapshot)
        raise InvalidError(
            f"@coldsnap.enter(snap=True) on {hooks} needs @app.cls(enable_memory_snapshot=True): "
            "snap=True hooks run once before the memory snapshot, and this class takes none. "
            "Add enable_memory_snapshot=True to @app.cls(), or use @coldsnap.enter() to run the "
            "hook on every cold boot."
        )


def _check_web_network(decorator: str, opts: FunctionOptions, name: str) -> None:
    """A web endpoint is reached through its container's network: refuse to block it."""
    if opts.block_network:
        raise InvalidError(
            f"{decorator}: {name} is a web endpoint, and block_network=True leaves its "
            "containers no network the HTTP gateway could reach them through. Remove "
            "block_network=True, or serve the endpoint from another function.")


def _own_image(decorator: str, options: dict[str, Any]) -> Image | None:
    """Take ``image=`` out of a decorator's keywords (it is not a FunctionOptions field)."""
    image = options.pop("image", None)
    if image is not None and not isinstance(image, Image):
        raise InvalidError(f"{decorator}: image= takes a coldsnap.Image, not "
                           f"{type(image).__name__}; build one with coldsnap.Image.debian_slim().")
    return image
