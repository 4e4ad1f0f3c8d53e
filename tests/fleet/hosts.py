"""Reading a fleet server's boot lines: which host each container booted on."""

from __future__ import annotations

import re

from tests.conftest import ServerHandle

BOOT_LINE = re.compile(r"\[(?P<id>cs-\w+)\] coldsnap: (?P<kind>[\w-]+) boot ready on host "
                       r"(?P<host>\S+) in")


def boots(server: ServerHandle, app: str) -> list[tuple[str, str, str]]:
    """(container id, boot kind, host) for each container that booted, oldest first."""
    log = server.cli("logs", app).stdout
    return [(m["id"], m["kind"], m["host"]) for m in BOOT_LINE.finditer(log)]


def spawn(server: ServerHandle, app: str, tag: str, *args: float) -> str:
    """Spawn a call; its FunctionCall id."""
    out = server.python("import coldsnap\n"
                        f"f = coldsnap.Function.from_name({app!r}, {tag!r})\n"
                        f"print(f.spawn(*{args!r}).object_id)\n")
    return out.stdout.strip().splitlines()[-1]


def result(server: ServerHandle, call_id: str, timeout: float) -> tuple[bool, str]:
    """(True, the value) or (False, the error's text), waiting at most ``timeout`` s."""
    out = server.python(
        "import coldsnap\n"
        f"call = coldsnap.FunctionCall.from_id({call_id!r})\n"
        "try:\n"
        f"    print('OK', call.get(timeout={timeout}))\n"
        "except Exception as exc:\n"
        "    print('ERROR', type(exc).__name__, str(exc).replace(chr(10), ' '))\n",
        timeout=timeout + 60)
    line = out.stdout.strip().splitlines()[-1]
    return line.startswith("OK"), line.split(" ", 1)[1]
