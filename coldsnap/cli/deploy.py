"""``coldsnap deploy`` and ``coldsnap run``."""

from __future__ import annotations

import argparse
import inspect
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coldsnap.cli.output import print_json, table
from coldsnap.client import Client
from coldsnap.wire import ops
from coldsnap.wire.description import FunctionDescription
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.web import path_form

if TYPE_CHECKING:
    from coldsnap.handles import Function

# Entrypoint parameter types by annotation name: an annotation may be text (PEP 563).
ENTRY_ARG_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool}


def read_source(path_text: str) -> tuple[Path, bytes]:
    path = Path(path_text)
    try:
        return path, path.read_bytes()
    except OSError as exc:
        raise InvalidError(f"can't read app file {path}: {exc.strerror}") from None


def build_progress() -> Callable[[str], None]:
    """Print image build lines to stderr as the server sends them, with the elapsed time."""
    start = time.monotonic()

    def show(line: str) -> None:
        print(f"[build {time.monotonic() - start:5.1f}s] {line}", file=sys.stderr, flush=True)

    return show


def cmd_deploy(args: argparse.Namespace) -> int:
    path, source = read_source(args.file)
    result = Client.default().deploy(source, path.name, name=args.name, app_dir=path.parent,
                                         snapshots=not args.no_snapshot,
                                         progress=build_progress())
    if args.json:
        print_json({k: v for k, v in result.items() if k != "ok"})
        return 0
    version = result["version"][:12]
    if result["changed"]:
        print(f"deployed {result['app']} version {version} from {path}")
    else:
        print(f"{result['app']} is up to date (version {version}): nothing changed")
    rows = []
    for tag, entry in sorted(result["functions"].items()):
        fn = FunctionDescription.from_dict(tag, entry, validate=False)  # the server checked
        opts = fn.options
        features = [name for name, on in (("memory snapshot", opts.enable_memory_snapshot),
                                          (f"gpu={_gpu_shown(opts.gpu)}", opts.gpu),
                                          ("gpu memory snapshot", opts.gpu_snapshot)) if on]
        if opts.schedule is not None:
            features.append(f"schedule {opts.schedule.describe()}")
        features += [f"volume {ref.name} at {path}" for path, ref in opts.volumes.items()]
        if opts.secrets:  # names (and inline ids), never values
            features.append("secrets " + ", ".join(ref.name for ref in opts.secrets))
        rows.append([tag, fn.kind, ", ".join(fn.methods) or "-", ", ".join(features) or "-"])
    print(table(rows, ["NAME", "KIND", "METHODS", "FEATURES"]))
    print_web_urls(result.get("web_urls") or {})
    print_notices(result.get("notices") or [])
    return 0


def print_notices(notices: list[str], file: Any = None) -> None:
    """What the server ignores or does differently from Modal's cloud, once per deploy."""
    for notice in notices:
        print(f"notice: {notice}", file=file or sys.stdout)


def _gpu_shown(gpu: str | tuple[str, ...] | None) -> str:
    return ",".join(gpu) if isinstance(gpu, tuple) else str(gpu)


def print_web_urls(urls: dict[str, str], file: Any = None) -> None:
    """Each web endpoint's URL, one per line, after a deploy."""
    if urls:
        print("web endpoints:", file=file or sys.stdout)
    for name, url in sorted(urls.items()):
        also = path_form(url)
        print(f"  {name}: {url}" + (f"  (or {also})" if also != url else ""),
              file=file or sys.stdout)


def cmd_run(args: argparse.Namespace) -> int:
    """Deploy an ephemeral copy, run the entrypoint here, then stop the copy (with
    ``--detach``: leave it running, so the calls it spawned finish)."""
    file_text, _, entry_name = args.target.partition("::")
    path, source = read_source(str(app_file_of(file_text)))
    app = _import_app(path)
    target = _entrypoint(app, entry_name, path)
    kwargs = _parse_entry_args(target, args.entry_args)  # a bad argument deploys nothing
    conn = Client.default()
    suffix = f"-run-{secrets.token_hex(3)}"
    name = app.name[:64 - len(suffix)] + suffix  # still a valid app name: 64 at most
    detach = bool(getattr(args, "detach", False))
    result = conn.deploy(source, path.name, name=name, ephemeral=not detach,
                         app_dir=path.parent, progress=build_progress())
    app._deployed_as = name
    kind = "detached app" if detach else "ephemeral app"
    print(f"running {path}::{getattr(target, '__name__', entry_name)} as {kind} {name}",
          file=sys.stderr)
    print_web_urls(result.get("web_urls") or {}, sys.stderr)
    print_notices(result.get("notices") or [], sys.stderr)
    try:
        from coldsnap.app_output import follow_app_output
        from coldsnap.user_code import run_maybe_async

        # All the app's output shows, each line once (a scheduled run's, a spawned call's).
        with follow_app_output(conn, name):
            run_maybe_async(target(**kwargs))  # an `async def` entrypoint is awaited
    finally:
        try:
            if detach:
                print(f"coldsnap: app {name} left running (--detach): its calls go on; "
                      f"stop it with `coldsnap app stop {name}`", file=sys.stderr)
            else:
                conn.request(ops.APP_STOP, app=name, delete=True)
        finally:
            app._deployed_as = None
    return 0


def app_file_of(target: str) -> Path:
    """``coldsnap run``'s target as a file: a path, or (as ``modal run pkg.module``) a
    dotted module path from the current directory."""
    path = Path(target)
    if path.exists() or target.endswith(".py"):
        return path
    parts = target.split(".")
    if all(part.isidentifier() for part in parts):
        base = Path.cwd().joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise InvalidError(f"{target!r} is neither a file nor a module under {Path.cwd()}: "
                       "give the app file's path (coldsnap run app.py) or its module "
                       "(coldsnap run pkg.app, from the directory that holds pkg)")


def _import_app(path: Path) -> Any:
    """The file's App, imported here; an error in the file is the user's to fix, so it
    shows their code's frames, not ours."""
    from coldsnap import user_code  # the SDK, and the app: only `run` needs them

    try:
        module = user_code.import_app_file(path)
    except Exception as exc:
        raise InvalidError(f"importing {path} failed, so it can't be run. Fix the error "
                           f"below and run again.\n\n{user_code.user_traceback(exc, path)}"
                           ) from None
    try:
        return user_code.find_app(module)
    except LookupError as exc:
        raise InvalidError(str(exc)) from None


def _entrypoint(app: Any, name: str, path: Path) -> Callable[..., Any]:
    entrypoints: dict[str, Callable[..., Any]] = dict(app.registered_entrypoints)
    functions = dict(app.registered_functions)
    if name:
        if name in entrypoints:
            return entrypoints[name]
        if name in functions:
            return _remote_printer(functions[name])
        known = sorted([*entrypoints, *functions])
        raise InvalidError(f"{path} has no local entrypoint or function {name!r}; it has: "
                           f"{', '.join(known) or 'nothing'}")
    if len(entrypoints) == 1:
        return next(iter(entrypoints.values()))
    if not entrypoints and len(functions) == 1:
        return _remote_printer(next(iter(functions.values())))
    choices = sorted(entrypoints) or sorted(functions)
    raise InvalidError(f"{path} has {len(entrypoints)} local entrypoints; say which one to run: "
                       + ", ".join(f"coldsnap run {path}::{c}" for c in choices))


def _remote_printer(function: Function[..., Any]) -> Callable[..., Any]:
    def run(**kwargs: Any) -> None:
        result = function.remote(**kwargs)
        if result is not None:  # a function that returns nothing prints nothing
            print(result)

    run.__name__ = function.tag
    signature = inspect.signature(function.raw_f) if function.raw_f else inspect.Signature()
    run.__signature__ = signature  # type: ignore[attr-defined]
    return run


def _parse_entry_args(target: Callable[..., Any], argv: list[str]) -> dict[str, Any]:
    """``--name value`` pairs for the entrypoint's parameters, converted by annotation;
    a bool parameter is a ``--name/--no-name`` switch."""
    parser = argparse.ArgumentParser(prog=f"coldsnap run ...::{target.__name__}")
    for param in inspect.signature(target).parameters.values():
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        kind = ENTRY_ARG_TYPES.get(str(getattr(param.annotation, "__name__", param.annotation)),
                                   str)
        if kind is bool:
            parser.add_argument(f"--{param.name}", action=argparse.BooleanOptionalAction,
                                required=required, default=default)
        else:
            parser.add_argument(f"--{param.name}", type=kind, required=required,
                                default=default)
    return dict(vars(parser.parse_args(argv)))
