"""The import graph flows one way: cli -> client/server -> engine, all -> wire.

Checked twice: statically (every import statement in the package, those inside
functions too) against the allowed dependencies of each layer, and by
importing the entry points in a fresh interpreter and looking at what loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coldsnap"
SDK = ("coldsnap", "coldsnap.app", "coldsnap.handles", "coldsnap.markers", "coldsnap.image",
       "coldsnap.user_code", "coldsnap.exception", "coldsnap.experimental",
       "coldsnap.unsupported", "coldsnap.running", "coldsnap.dict_queue",
       "coldsnap.schedule", "coldsnap.web", "coldsnap.parameter", "coldsnap._aio",
       "coldsnap._calls", "coldsnap.volume", "coldsnap.secret",
       "coldsnap.app_objects", "coldsnap.concurrency", "coldsnap.functions",
       "coldsnap.batching", "coldsnap.current", "coldsnap.snapshot_hooks", "coldsnap.queue",
       "coldsnap.dict", "coldsnap.sandboxes", "coldsnap.sandbox_io",
       "coldsnap.container_process", "coldsnap.io_streams", "coldsnap.sandbox_files",
       "coldsnap.call_graph", "coldsnap.function_call", "coldsnap.invocable",
       "coldsnap.cls_handle")
# Layer -> what its modules may import of coldsnap besides themselves.
ALLOWED: dict[str, tuple[str, ...]] = {
    # The contract: a leaf.
    "coldsnap.wire": (),
    # The snapshot engine knows nothing about apps, the server or the client.
    "coldsnap.engine": ("coldsnap.wire", "coldsnap.settings"),
    # Code in containers: the contract, and the SDK the user's app imports anyway.
    "coldsnap._runtime": ("coldsnap.wire", *SDK),
    # The client of the server's socket. Inside a container it reaches the server over the
    # runtime's channel: the one edge back, imported lazily (the runtime never loads the
    # client unless user code calls another function).
    "coldsnap.client": ("coldsnap.wire", "coldsnap.settings", "coldsnap.identity",
                        "coldsnap._runtime.channel", "coldsnap.transport",
                        "coldsnap.background_server", "coldsnap.app_output",
                        "coldsnap.container_client"),
    # A container's client: over the runtime's channel (imported by Client.default).
    "coldsnap.container_client": ("coldsnap.wire", "coldsnap.settings", "coldsnap.client",
                                  "coldsnap._runtime.channel"),
    # An app's container output on the client: the log stream it reads, and the echo.
    "coldsnap.app_output": ("coldsnap.wire",),
    # Its socket with time limits, and the server it starts in the background.
    "coldsnap.transport": ("coldsnap.wire", "coldsnap.settings"),
    "coldsnap.background_server": ("coldsnap.settings", "coldsnap.identity"),
    # The public SDK: handles reach the server through the client only.
    "coldsnap.app": ("coldsnap.wire", *SDK),
    "coldsnap.handles": ("coldsnap.wire", "coldsnap.client", *SDK),
    "coldsnap.invocable": ("coldsnap.wire", "coldsnap.client", *SDK),
    "coldsnap.cls_handle": ("coldsnap.wire", "coldsnap.client", *SDK),
    "coldsnap.markers": ("coldsnap.wire",),
    "coldsnap.functions": ("coldsnap.handles",),  # modal.functions's names
    "coldsnap.queue": ("coldsnap.dict_queue",),  # modal.queue's name
    "coldsnap.dict": ("coldsnap.dict_queue",),  # modal.dict's name
    # Volumes and secrets: references; a volume's methods reach the server like handles.
    "coldsnap.volume": ("coldsnap.wire", "coldsnap.client"),
    "coldsnap.secret": ("coldsnap.wire",),
    "coldsnap.app_objects": ("coldsnap.wire", *SDK),
    "coldsnap.parameter": ("coldsnap.wire",),
    "coldsnap.snapshot_hooks": ("coldsnap.wire",),
    # Sandboxes reach the server through the client, lazily.
    "coldsnap.sandboxes": ("coldsnap.wire", "coldsnap.client", *SDK),
    "coldsnap.sandbox_io": ("coldsnap.wire", "coldsnap.client", "coldsnap._aio"),
    "coldsnap.container_process": ("coldsnap.sandbox_io",),  # modal.container_process
    "coldsnap.io_streams": ("coldsnap.sandbox_io",),  # modal.io_streams
    "coldsnap.sandbox_files": ("coldsnap.wire", "coldsnap.sandbox_io"),
    "coldsnap._aio": (),
    "coldsnap._calls": ("coldsnap.wire", "coldsnap.client", "coldsnap.container_client",
                        *SDK),
    "coldsnap.image": ("coldsnap.wire", "coldsnap._dockerfile", "coldsnap._local_files",
                       "coldsnap.app_objects", "coldsnap.secret", "coldsnap.volume"),
    "coldsnap._local_files": ("coldsnap.wire",),
    "coldsnap._dockerfile": ("coldsnap.wire", "coldsnap.image"),
    "coldsnap.exception": ("coldsnap.wire", "coldsnap.unsupported"),
    "coldsnap.experimental": ("coldsnap.wire", "coldsnap.unsupported"),
    "coldsnap.unsupported": ("coldsnap.wire",),
    "coldsnap.schedule": ("coldsnap.wire",),
    # Dicts and Queues reach the server through the client, lazily.
    "coldsnap.dict_queue": ("coldsnap.wire", "coldsnap.client", "coldsnap._aio"),
    # app.run(): deploys through the client, lazily (defining an app touches no network).
    "coldsnap.running": ("coldsnap.wire", "coldsnap.client", "coldsnap.app_output", *SDK),
    "coldsnap.user_code": ("coldsnap.wire", *SDK),
    "coldsnap.settings": (),
    "coldsnap.identity": (),
    # The control plane drives the engine; it runs user code only in subprocesses.
    "coldsnap.server": ("coldsnap.engine", "coldsnap.wire", "coldsnap.settings",
                        "coldsnap.identity"),
    # The command: the client for everything, the server only to serve (a test below),
    # the engine's doctor, and the SDK for `run` (the entrypoint runs here).
    "coldsnap.cli": ("coldsnap.client", "coldsnap.server", "coldsnap.engine.doctor",
                     "coldsnap.bench.cli", "coldsnap.wire", "coldsnap.settings",
                     "coldsnap.identity", "coldsnap.app_output", *SDK),
    # The benchmark: a client of its own server, and the engine for restore latency.
    "coldsnap.bench": ("coldsnap.client", "coldsnap.engine", "coldsnap._runtime.memory",
                       "coldsnap.wire", "coldsnap.settings", "coldsnap"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every coldsnap module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found.update(name for name in submodules if is_module(name))
            if not all(is_module(name) for name in submodules):  # names defined in it
                found.add(node.module)
    return {name for name in found if name == "coldsnap" or name.startswith("coldsnap.")}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_module(name: str) -> bool:
    """``from coldsnap.x import y`` names y: keep it only if it is a module itself."""
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {module_name(p): {n for n in imports_of(p) if is_module(n)}
         for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    allowed = (layer, *ALLOWED[layer])
    wrong = {
        module: sorted(n for n in names if not within(n, allowed))
        for module, names in GRAPH.items() if within(module, (layer,))
    }
    wrong = {module: names for module, names in wrong.items() if names}
    assert wrong == {}, f"{layer} may import only {allowed}"


def test_the_package_itself_exports_only_the_sdk() -> None:
    # `coldsnap/__init__.py` is every layer's parent: checked on its own.
    assert GRAPH["coldsnap"] <= {*SDK, "coldsnap.wire.errors", "coldsnap.wire.retries"}


def test_only_the_serve_command_imports_the_server() -> None:
    importers = sorted(module for module, names in GRAPH.items()
                       if not within(module, ("coldsnap.server",))
                       and any(within(n, ("coldsnap.server",)) for n in names))
    assert importers == ["coldsnap.cli.system"]


def loaded_after(statement: str) -> list[str]:
    code = (f"import sys, json; {statement}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('coldsnap'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return json.loads(done.stdout)


def test_the_sdk_loads_no_server_engine_or_client() -> None:
    loaded = loaded_after("import coldsnap")
    assert not [m for m in loaded if within(m, ("coldsnap.server", "coldsnap.engine",
                                                "coldsnap.client", "coldsnap.cli"))]


def test_the_client_loads_no_server_or_engine() -> None:
    loaded = loaded_after("import coldsnap.client")
    assert "coldsnap.client" in loaded
    assert not [m for m in loaded if within(m, ("coldsnap.server", "coldsnap.engine"))]


def test_the_cli_loads_the_server_only_to_serve() -> None:
    # What `coldsnap --help` loads: the parser of every command, the benchmark's too.
    loaded = loaded_after("import coldsnap.cli.main as m; m.build_parser()")
    assert "coldsnap.bench.cli" in loaded
    assert not [m for m in loaded if within(m, ("coldsnap.server", "coldsnap.engine"))]


def test_the_runtime_loads_no_server_engine_or_client() -> None:
    loaded = loaded_after("import coldsnap._runtime.lifecycle")
    assert not [m for m in loaded if within(m, ("coldsnap.server", "coldsnap.engine",
                                                "coldsnap.client", "coldsnap.cli"))]
