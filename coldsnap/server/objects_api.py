"""The socket API's volume and secret ops (``HANDLERS`` in api.py adds these).

Each handler reads its fields, asks ``VolumeStore`` or ``SecretStore`` and
answers; no reply carries a secret's values. Containers may use the volume ops
(``CONTAINER_OPS``), never the secret ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coldsnap.server.errors import Reply
from coldsnap.server.secrets import SecretStore
from coldsnap.server.volumes import VolumeStore
from coldsnap.wire import ops

if TYPE_CHECKING:
    from coldsnap.server.api import Api, Request


def _volumes(api: Api) -> VolumeStore:
    return VolumeStore(api.platform.settings)


def _secrets(api: Api) -> SecretStore:
    return SecretStore(api.platform.settings)


def _name(req: Request) -> str:
    name: str = req.field("name", str)
    return name


def volume_create(api: Api, req: Request) -> Reply:
    result = _volumes(api).create(_name(req), exist_ok=bool(req.field("exist_ok", bool, False)),
                                  ephemeral=bool(req.field("ephemeral", bool, False)))
    return {"ok": True, **result}, None


def volume_list(api: Api, req: Request) -> Reply:
    return {"ok": True, "volumes": _volumes(api).ls()}, None


def volume_delete(api: Api, req: Request) -> Reply:
    return {"ok": True, **_volumes(api).delete(_name(req))}, None


def volume_listdir(api: Api, req: Request) -> Reply:
    entries = _volumes(api).listdir(_name(req), req.field("path", str, "/"),
                                    recursive=bool(req.field("recursive", bool, False)))
    return {"ok": True, "entries": entries}, None


def volume_read(api: Api, req: Request) -> Reply:
    return {"ok": True}, _volumes(api).read(_name(req), req.field("path", str))


def volume_write(api: Api, req: Request) -> Reply:
    mode = req.count("mode", most=0o777)
    result = _volumes(api).write(_name(req), req.field("path", str),
                                 req.need_blob("the file's contents"),
                                 0o644 if mode is None else mode)
    return {"ok": True, **result}, None


def volume_remove(api: Api, req: Request) -> Reply:
    result = _volumes(api).remove(_name(req), req.field("path", str),
                                  recursive=bool(req.field("recursive", bool, False)))
    return {"ok": True, **result}, None


def secret_create(api: Api, req: Request) -> Reply:
    result = _secrets(api).create(_name(req), req.field("values", dict),
                                  force=bool(req.field("force", bool, False)))
    return {"ok": True, **result}, None


def secret_list(api: Api, req: Request) -> Reply:
    return {"ok": True, "secrets": _secrets(api).ls()}, None


def secret_delete(api: Api, req: Request) -> Reply:
    return {"ok": True, **_secrets(api).rm(_name(req))}, None


OBJECT_HANDLERS: dict[str, Callable[[Any, Any], Reply]] = {
    ops.VOLUME_CREATE: volume_create,
    ops.VOLUME_LIST: volume_list,
    ops.VOLUME_DELETE: volume_delete,
    ops.VOLUME_LISTDIR: volume_listdir,
    ops.VOLUME_READ: volume_read,
    ops.VOLUME_WRITE: volume_write,
    ops.VOLUME_REMOVE: volume_remove,
    ops.SECRET_CREATE: secret_create,
    ops.SECRET_LIST: secret_list,
    ops.SECRET_DELETE: secret_delete,
}
# What a container may send of these: its functions read and write volumes too.
VOLUME_CONTAINER_OPS = frozenset({ops.VOLUME_LISTDIR, ops.VOLUME_READ, ops.VOLUME_WRITE,
                                  ops.VOLUME_REMOVE, ops.VOLUME_CREATE})
