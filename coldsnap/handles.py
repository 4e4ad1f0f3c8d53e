"""Handles users call: ``Function`` here, ``Cls`` (and its methods) in cls_handle.py,
what both share in invocable.py; a spawned call's ``FunctionCall`` is in
function_call.py.

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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from coldsnap._aio import with_aio
from coldsnap.cls_handle import Cls
from coldsnap.function_call import FunctionCall
from coldsnap.invocable import _check_names, _Invocable, _missing, _overrides
from coldsnap.unsupported import ModalClass
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.variant import Variant
from coldsnap.wire.web import WebEndpoint

if TYPE_CHECKING:
    from coldsnap.app import App

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Cls", "Function", "FunctionCall"]


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
