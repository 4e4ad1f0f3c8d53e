"""The socket API's sandbox ops (``HANDLERS`` in api.py adds these; wire/sandbox.py
names them, docs/sandboxes.md describes them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coldsnap.server.errors import ApiError, Reply
from coldsnap.server.sandboxes import Sandbox, SandboxRequest
from coldsnap.wire import ops
from coldsnap.wire import sandbox as wire
from coldsnap.wire.errors import BAD_REQUEST, InvalidError
from coldsnap.wire.image_spec import ImageSpec

if TYPE_CHECKING:
    from coldsnap.server.api import Api, Request

# The longest one read or wait request waits on the server; clients ask again.
MAX_POLL_S = 30.0
MAX_TIMEOUT_S = 24 * 3600.0  # as Modal's longest sandbox lifetime


def _sandbox(api: Api, req: Request) -> Sandbox:
    return api.platform.sandboxes.get(req.field("sandbox_id", str))


def _argv(req: Request, name: str, allow_empty: bool) -> list[str]:
    argv = req.field(name, list, [])
    if not all(isinstance(arg, str) for arg in argv) or (not argv and not allow_empty):
        raise ApiError(BAD_REQUEST, f"op {req.header.get(ops.OP)!r}: {name} must be a "
                       "non-empty list of strings")
    return list(argv)


def _str_dict(req: Request, name: str) -> dict[str, str]:
    value = req.field(name, dict, None) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(BAD_REQUEST, f"op {req.header.get(ops.OP)!r}: {name} maps str to str")
    return dict(value)


def sandbox_create(api: Api, req: Request) -> Reply:
    try:
        image = ImageSpec.from_dict(req.field("image", dict))
    except InvalidError as exc:
        raise ApiError(BAD_REQUEST, f"Sandbox.create(): the image is not valid: {exc}"
                       ) from None
    if req.field("default_image", bool, False) and not api.platform.engine.isolated:
        image = ImageSpec()  # the host's root, as deploys do (on_host_by_default)
    timeout = req.number("timeout", above=0, most=MAX_TIMEOUT_S)
    request = SandboxRequest(
        app=req.field("app", str), entrypoint=_argv(req, "entrypoint", True), image=image,
        options=req.field("options", dict, None) or {},
        secrets=req.field("secrets", list, None) or [],
        timeout_s=300.0 if timeout is None else timeout,
        idle_timeout_s=req.number("idle_timeout", above=0, most=MAX_TIMEOUT_S),
        workdir=req.field("workdir", str, None), name=req.field("name", str, None),
        tags=_str_dict(req, "tags"))
    progress = bool(req.field("progress", bool, False))

    def report(line: str) -> None:  # streamed as it happens, as a deploy's build
        if progress:
            req.send({"ok": True, "progress": line})

    sandbox = api.platform.sandboxes.create(request, report)
    return {"ok": True, **sandbox.info()}, None


def sandbox_exec(api: Api, req: Request) -> Reply:
    sandbox = _sandbox(api, req)
    pid_id = sandbox.running.start(
        None, _argv(req, "argv", False), req.field("workdir", str, None),
        _str_dict(req, "env"), req.number("timeout", above=0, most=MAX_TIMEOUT_S))
    return {"ok": True, "process_id": pid_id}, None


def sandbox_read(api: Api, req: Request) -> Reply:
    stream = req.field("stream", str)
    if stream not in wire.STREAMS:
        raise ApiError(BAD_REQUEST, f"stream must be one of {', '.join(wire.STREAMS)}")
    data, eof = _sandbox(api, req).running.read(
        req.field("process_id", str, wire.ENTRYPOINT), stream, req.count("offset") or 0,
        req.number("wait", least=0, most=MAX_POLL_S) or 0.0)
    return {"ok": True, "eof": eof}, data


def sandbox_write(api: Api, req: Request) -> Reply:
    _sandbox(api, req).running.write(req.field("process_id", str, wire.ENTRYPOINT),
                                     req.blob or b"", bool(req.field("eof", bool, False)))
    return {"ok": True}, None


def sandbox_wait(api: Api, req: Request) -> Reply:
    sandbox = _sandbox(api, req)
    process_id = req.field("process_id", str, None)
    code = sandbox.running.wait(process_id,
                                req.number("timeout", least=0, most=MAX_POLL_S) or 0.0)
    if process_id is not None:
        return {"ok": True, "returncode": code}, None
    return {"ok": True, **sandbox.info()}, None


def sandbox_terminate(api: Api, req: Request) -> Reply:
    sandbox = _sandbox(api, req)
    sandbox.running.terminate()
    return {"ok": True, **sandbox.info()}, None


def sandbox_get(api: Api, req: Request) -> Reply:
    sandboxes = api.platform.sandboxes
    name = req.field("name", str, None)
    if name is not None:
        found = sandboxes.by_name(req.field("app", str), name)
        assert found is not None
        return {"ok": True, **found.info()}, None
    return {"ok": True, **_sandbox(api, req).info()}, None


def sandbox_list(api: Api, req: Request) -> Reply:
    found = api.platform.sandboxes.list(req.field("app", str, None), _str_dict(req, "tags"))
    return {"ok": True, "sandboxes": [sandbox.info() for sandbox in found]}, None


def sandbox_tags(api: Api, req: Request) -> Reply:
    sandbox = _sandbox(api, req)
    if req.header.get("tags") is not None:
        sandbox.tags = _str_dict(req, "tags")
    return {"ok": True, "tags": dict(sandbox.tags)}, None


SANDBOX_HANDLERS: dict[str, Callable[[Any, Any], Reply]] = {
    wire.SANDBOX_CREATE: sandbox_create,
    wire.SANDBOX_EXEC: sandbox_exec,
    wire.SANDBOX_READ: sandbox_read,
    wire.SANDBOX_WRITE: sandbox_write,
    wire.SANDBOX_WAIT: sandbox_wait,
    wire.SANDBOX_TERMINATE: sandbox_terminate,
    wire.SANDBOX_GET: sandbox_get,
    wire.SANDBOX_LIST: sandbox_list,
    wire.SANDBOX_TAGS: sandbox_tags,
}
