"""``Sandbox``: a container of its own, started at run time, that runs what you exec.

Modal's names and signatures; the container is a coldsnap container like a
function's (same image build, isolation, limits, volumes and secrets). Example::

    app = coldsnap.App.lookup("sandboxes", create_if_missing=True)
    sb = coldsnap.Sandbox.create(app=app, image=coldsnap.Image.debian_slim())
    p = sb.exec("python", "-c", "print(6 * 7)")
    print(p.stdout.read())   # 42
    sb.terminate()
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from coldsnap import sandbox_files
from coldsnap._aio import static_with_aio, with_aio
from coldsnap.exception import SandboxTerminatedError, SandboxTimeoutError
from coldsnap.running import output_enabled
from coldsnap.sandbox_io import (
    POLL_S,
    ContainerProcess,
    StreamReader,
    StreamWriter,
    check_exec_args,
)
from coldsnap.secret import Secret
from coldsnap.volume import Volume
from coldsnap.wire import sandbox as wire
from coldsnap.wire.container import APP_NAME_ENV, in_container
from coldsnap.wire.errors import InvalidError

if TYPE_CHECKING:
    from coldsnap.app import App
    from coldsnap.client import Client
    from coldsnap.image import Image

# Modal's keywords that need its cloud: accepted, and said once what they mean here.
CLOUD_ONLY = ("cloud", "region", "proxy", "custom_domain", "include_oidc_identity_token",
              "outbound_domain_allowlist", "inbound_cidr_allowlist", "readiness_probe")


def _client() -> Client:
    from coldsnap.client import Client

    return Client.default()


def _app_name(app: App | None) -> str:
    if app is not None:
        return app.deployed_name
    if in_container() and os.environ.get(APP_NAME_ENV):
        return os.environ[APP_NAME_ENV]  # a function's sandbox joins the function's app
    raise InvalidError("Sandbox.create() needs app= outside a coldsnap container: pass "
                       "app=coldsnap.App.lookup('my-app', create_if_missing=True), or the "
                       "App your functions use")


def _image(image: Image | None, app: App | None) -> dict[str, Any]:
    from coldsnap.image import Image

    chosen = image if image is not None else (app.image if app is not None else None)
    if chosen is None:
        chosen = Image.debian_slim()  # Modal's default image
    if not isinstance(chosen, Image):
        raise InvalidError(f"Sandbox.create(image=...) takes a coldsnap.Image, not "
                           f"{type(chosen).__name__}")
    return chosen.to_dict()


def _secrets(secrets: Sequence[Secret] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for secret in secrets or ():
        if not isinstance(secret, Secret):
            raise InvalidError(f"Sandbox.create(secrets=[...]) takes coldsnap.Secret objects, "
                               f"not {type(secret).__name__}")
        out.append({"values": secret.values()} if secret.inline else {"name": secret.name})
    return out


def _volumes(volumes: dict[str, Any] | None) -> dict[str, Any]:
    refs = {}
    for path, volume in (volumes or {}).items():
        if not isinstance(volume, Volume):
            raise InvalidError(f"Sandbox.create(volumes={{{path!r}: ...}}) takes a "
                               f"coldsnap.Volume, not {type(volume).__name__}")
        volume.hydrate()  # made now when create_if_missing, else it must exist
        refs[path] = volume.ref().to_dict()
    return refs


def _create(client: Client, **fields: Any) -> dict[str, Any]:
    """``sandbox_create``; inside ``enable_output()`` the image build's lines are printed
    to stderr as they come, as ``app.run()`` prints a deploy's."""
    if not output_enabled() or in_container():
        return client.request(wire.SANDBOX_CREATE, **fields)[0]
    for header in client.stream(wire.SANDBOX_CREATE, progress=True, **fields):
        if "progress" not in header:
            return header
        print(f"[build] {header['progress']}", file=sys.stderr, flush=True)
    raise InvalidError("the server ended Sandbox.create() without an answer")


def _refused_ports(encrypted_ports: Sequence[int], h2_ports: Sequence[int],
                   unencrypted_ports: Sequence[int]) -> None:
    if encrypted_ports or h2_ports or unencrypted_ports:
        raise InvalidError(
            "Sandbox.create(encrypted_ports=/h2_ports=/unencrypted_ports=) is not supported "
            "by coldsnap yet: a sandbox's ports get no tunnel. Serve HTTP from a function "
            "with @coldsnap.web_server(port) instead, or leave the ports out.")


class Sandbox:
    """A running sandbox; make one with ``Sandbox.create()``."""

    def __init__(self, client: Client, info: dict[str, Any]) -> None:
        self._client = client
        self.object_id: str = info["sandbox_id"]
        self._info = info
        entry = ContainerProcess[str](client, self.object_id, wire.ENTRYPOINT)
        self.stdout: StreamReader[str] = entry.stdout
        self.stderr: StreamReader[str] = entry.stderr
        self.stdin: StreamWriter = entry.stdin
        self._returncode: int | None = info.get("returncode")

    @static_with_aio
    def create(*args: str, app: App | None = None, name: str | None = None,
               tags: dict[str, str] | None = None, image: Image | None = None,
               env: dict[str, str | None] | None = None, secrets: Sequence[Secret] | None = None,
               network_file_systems: dict[str, Any] | None = None, timeout: int = 300,
               idle_timeout: int | None = None, workdir: str | None = None,
               gpu: str | list[str] | None = None, cpu: float | tuple[float, float] | None = None,
               memory: int | tuple[int, int] | None = None, block_network: bool = False,
               cidr_allowlist: Sequence[str] | None = None,
               outbound_cidr_allowlist: Sequence[str] | None = None,
               volumes: dict[str, Volume] | None = None, pty: bool = False,
               encrypted_ports: Sequence[int] = (), h2_ports: Sequence[int] = (),
               unencrypted_ports: Sequence[int] = (), verbose: bool = False,
               experimental_options: dict[str, Any] | None = None,
               environment_name: str | None = None, **cloud: Any) -> Sandbox:
        """Start a sandbox; ``args`` is its entrypoint (none: it waits for ``exec``
        until ``terminate()`` or ``timeout`` seconds). ``cidr_allowlist`` is accepted
        and not enforced: the sandbox has the network, or none with ``block_network``."""
        unknown = sorted(set(cloud) - set(CLOUD_ONLY))
        if unknown:
            raise InvalidError(f"Sandbox.create() got unknown keyword(s) {', '.join(unknown)}")
        _refused_ports(encrypted_ports, h2_ports, unencrypted_ports)
        if network_file_systems:
            raise InvalidError("Sandbox.create(network_file_systems=) is not supported by "
                               "coldsnap: use volumes={path: coldsnap.Volume.from_name(...)}")
        if pty:
            raise InvalidError("Sandbox.create(pty=True) is not supported by coldsnap yet: the "
                               "entrypoint gets pipes, not a terminal. Leave pty out.")
        options: dict[str, Any] = {"env": {k: v for k, v in (env or {}).items() if v is not None},
                                   "gpu": gpu, "cpu": cpu, "memory": memory,
                                   "block_network": block_network, "volumes": _volumes(volumes)}
        client = _client()
        entrypoint = check_exec_args(args, False, -1) if args else []
        header = _create(
            client, app=_app_name(app), entrypoint=entrypoint,
            image=_image(image, app), default_image=image is None and (app is None or
                                                                       app.image is None),
            options=options, secrets=_secrets(secrets),
            timeout=timeout, idle_timeout=idle_timeout, workdir=workdir, name=name,
            tags=tags or {})
        for note in _notices(cidr_allowlist or outbound_cidr_allowlist, cloud):
            print(f"coldsnap: {note}", file=sys.stderr)
        return Sandbox(client, header)

    @static_with_aio
    def from_id(sandbox_id: str, client: Any = None) -> Sandbox:  # type: ignore[misc]
        """The sandbox ``sandbox_id`` (its ``object_id``), running or recently ended."""
        client = _client()
        header, _ = client.request(wire.SANDBOX_GET, sandbox_id=sandbox_id)
        return Sandbox(client, header)

    @static_with_aio
    def from_name(app_name: str, name: str, *,  # type: ignore[misc]
                  environment_name: str | None = None,
                  client: Any = None) -> Sandbox:
        """The running sandbox created with ``name=`` in app ``app_name``."""
        client = _client()
        header, _ = client.request(wire.SANDBOX_GET, app=app_name, name=name)
        return Sandbox(client, header)

    @staticmethod
    def list(*, app_id: str | None = None, tags: dict[str, str] | None = None,
             client: Any = None) -> Iterator[Sandbox]:
        """Sandboxes on the server, of one app (``app_id``: its name here) and with ``tags``."""
        client = _client()
        header, _ = client.request(wire.SANDBOX_LIST, app=app_id, tags=tags or {})
        for info in header["sandboxes"]:
            yield Sandbox(client, info)

    @with_aio
    def exec(self, *args: str, pty: bool = False, pty_info: Any = None,
             stdout: Any = None, stderr: Any = None, timeout: int | None = None,
             workdir: str | None = None, env: dict[str, str | None] | None = None,
             secrets: Sequence[Secret] | None = None, text: bool = True,
             bufsize: int = -1) -> ContainerProcess[Any]:
        """Run a command in the sandbox; its streams and exit come back in the process."""
        argv = check_exec_args(args, pty or pty_info is not None, bufsize)
        extra = {k: v for k, v in (env or {}).items() if v is not None}
        for secret in _secrets(secrets):
            if "name" in secret:
                raise InvalidError("Sandbox.exec(secrets=) takes Secret.from_dict() secrets "
                                   "here; pass named secrets to Sandbox.create(secrets=)")
            extra.update(secret["values"])
        header, _ = self._client.request(wire.SANDBOX_EXEC, sandbox_id=self.object_id,
                                         argv=argv, workdir=workdir, env=extra, timeout=timeout)
        return ContainerProcess(self._client, self.object_id, header["process_id"], text)

    @with_aio
    def wait(self, raise_on_termination: bool = True) -> None:
        """Wait for the sandbox to end: its entrypoint exits, or it is terminated or
        times out (those raise, unless ``raise_on_termination=False``)."""
        while self._ask(POLL_S) is None:
            pass
        ended_by = self._info.get("ended_by")
        if raise_on_termination and ended_by == wire.TIMED_OUT:
            raise SandboxTimeoutError(f"sandbox {self.object_id} reached its timeout")
        if raise_on_termination and ended_by == wire.TERMINATED:
            raise SandboxTerminatedError(f"sandbox {self.object_id} was terminated")

    @with_aio
    def poll(self) -> int | None:
        """The return code if the sandbox has ended, else None (does not wait)."""
        return self._ask(0.0)

    @property
    def returncode(self) -> int | None:
        """The entrypoint's exit code (137 when terminated or timed out), once ended."""
        return self._returncode

    def _ask(self, wait_s: float) -> int | None:
        if self._returncode is None:
            header, _ = self._client.request(wire.SANDBOX_WAIT, sandbox_id=self.object_id,
                                             timeout=wait_s)
            self._info = header
            self._returncode = header.get("returncode")
        return self._returncode

    @with_aio
    def terminate(self) -> None:
        """Kill the sandbox and everything in it."""
        header, _ = self._client.request(wire.SANDBOX_TERMINATE, sandbox_id=self.object_id)
        self._info = header
        self._returncode = header.get("returncode")

    @with_aio
    def set_tags(self, tags: dict[str, str], *, client: Any = None) -> None:
        self._client.request(wire.SANDBOX_TAGS, sandbox_id=self.object_id, tags=tags)

    @with_aio
    def get_tags(self) -> dict[str, str]:
        header, _ = self._client.request(wire.SANDBOX_TAGS, sandbox_id=self.object_id)
        return dict(header["tags"])

    def open(self, path: str, mode: str = "r") -> sandbox_files.FileIO:
        """A file of the sandbox, read whole now and written back on ``close()``."""
        return sandbox_files.FileIO(sandbox_files.run_in(self.exec), path, mode)

    def ls(self, path: str) -> builtins.list[str]:
        """The names in a directory of the sandbox."""
        return sandbox_files.ls(sandbox_files.run_in(self.exec), path)

    def mkdir(self, path: str, parents: bool = False) -> None:
        sandbox_files.mkdir(sandbox_files.run_in(self.exec), path, parents)

    def rm(self, path: str, recursive: bool = False) -> None:
        sandbox_files.rm(sandbox_files.run_in(self.exec), path, recursive)

    def tunnels(self, timeout: int = 50) -> dict[int, Any]:
        """Not supported: a sandbox's ports get no tunnel here (see create's ports)."""
        raise InvalidError("Sandbox.tunnels() is not supported by coldsnap yet: a sandbox's "
                           "ports get no tunnel. Serve HTTP from a function with "
                           "@coldsnap.web_server(port) instead.")

    def detach(self) -> None:
        """Modal's: let go of the connection. The sandbox runs on; nothing to let go here."""

    def hydrate(self, client: Any = None) -> Sandbox:
        return self

    def __repr__(self) -> str:
        return f"Sandbox({self.object_id})"


def _notices(cidrs: Sequence[str] | None, cloud: dict[str, Any]) -> list[str]:
    notes = []
    if cidrs:
        notes.append("Sandbox.create(cidr_allowlist=...) is not enforced on a self-hosted "
                     "server: the sandbox has the network (block_network=True removes it)")
    if cloud:
        notes.append(f"Sandbox.create({', '.join(sorted(cloud))}=...) means nothing on a "
                     "self-hosted server: the sandbox runs on this server")
    return notes
