"""``coldsnap volume create|list|ls|put|get|rm|delete``: the server's volumes and their files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coldsnap.cli.output import ago, print_json, size, table
from coldsnap.client import Client
from coldsnap.wire import ops


def _request(op: str, blob: bytes | None = None, **fields: Any
             ) -> tuple[dict[str, Any], bytes | None]:
    return Client.default().request(op, blob, **fields)


def cmd_create(args: argparse.Namespace) -> int:
    _request(ops.VOLUME_CREATE, name=args.name)
    print(f"created volume {args.name}; mount it with "
          f"volumes={{'/data': coldsnap.Volume.from_name({args.name!r})}}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    volumes = _request(ops.VOLUME_LIST)[0]["volumes"]
    if args.json:
        print_json(volumes)
    elif not volumes:
        print("no volumes; create one with `coldsnap volume create NAME`")
    else:
        print(table([[v["name"], ago(v["created_at"]) if v["created_at"] else "-"]
                     for v in volumes], ["VOLUME", "CREATED"]))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.name is None:
        return cmd_list(args)
    entries = _request(ops.VOLUME_LISTDIR, name=args.name, path=args.path,
                       recursive=args.recursive)[0]["entries"]
    if args.json:
        print_json(entries)
        return 0
    rows = [[e["path"] + ("/" if e["type"] == "directory" else ""), e["type"],
             size(e["size"]) if e["type"] == "file" else "-", ago(e["mtime"])] for e in entries]
    print(table(rows, ["PATH", "TYPE", "SIZE", "MODIFIED"]) if rows
          else f"{args.path} in volume {args.name} is empty")
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    """A file to REMOTE (into it when it ends in "/"), or a directory's files below it."""
    local = Path(args.local)
    remote = args.remote or "/" + local.name
    if not local.exists():
        print(f"error: {local} does not exist: name a local file or directory to upload",
              file=sys.stderr)
        return 2
    if local.is_dir():
        pairs = [(path, f"{remote.rstrip('/')}/{path.relative_to(local).as_posix()}")
                 for path in sorted(local.rglob("*")) if path.is_file()]
    else:
        pairs = [(local, remote + local.name if remote.endswith("/") else remote)]
    for path, target in pairs:
        _request(ops.VOLUME_WRITE, path.read_bytes(), name=args.name, path=target,
                 mode=path.stat().st_mode & 0o777)
        print(f"{path} -> {args.name}:{target}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    _, blob = _request(ops.VOLUME_READ, name=args.name, path=args.remote)
    data = blob or b""
    if args.local == "-":
        sys.stdout.buffer.write(data)
        return 0
    local = Path(args.local or Path(args.remote).name)
    if local.is_dir():
        local = local / Path(args.remote).name
    local.write_bytes(data)
    print(f"{args.name}:{args.remote} -> {local} ({size(len(data))})")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    _request(ops.VOLUME_REMOVE, name=args.name, path=args.path, recursive=args.recursive)
    print(f"removed {args.name}:{args.path}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _request(ops.VOLUME_DELETE, name=args.name)
    print(f"deleted volume {args.name} and its files")
    return 0


COMMANDS = {"create": cmd_create, "list": cmd_list, "ls": cmd_ls, "put": cmd_put,
            "get": cmd_get, "rm": cmd_rm, "delete": cmd_delete}


def add_parsers(sub: Any) -> None:
    volume = sub.add_parser("volume", help="volumes: directories functions mount").add_subparsers(
        dest="volume_command", required=True, metavar="|".join(COMMANDS))
    volume.add_parser("create", help="create a volume").add_argument("name")
    volume.add_parser("list", help="list volumes").add_argument("--json", action="store_true")
    ls = volume.add_parser("ls", help="list a volume's files (no NAME: the volumes)")
    ls.add_argument("name", nargs="?")
    ls.add_argument("path", nargs="?", default="/")
    ls.add_argument("-r", "--recursive", action="store_true")
    ls.add_argument("--json", action="store_true")
    put = volume.add_parser("put", help="upload a file or a directory")
    put.add_argument("name")
    put.add_argument("local")
    put.add_argument("remote", nargs="?", help="path in the volume (default: /LOCAL's name)")
    get = volume.add_parser("get", help="download a file ('-' for stdout)")
    get.add_argument("name")
    get.add_argument("remote")
    get.add_argument("local", nargs="?")
    rm = volume.add_parser("rm", help="remove a file (or a directory with -r)")
    rm.add_argument("name")
    rm.add_argument("path")
    rm.add_argument("-r", "--recursive", action="store_true")
    volume.add_parser("delete", help="delete a volume and its files").add_argument("name")
