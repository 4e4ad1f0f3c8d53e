"""``Image.dockerfile_commands``: the common Dockerfile instructions as image steps.

RUN becomes ``run_commands``, ENV ``env``, WORKDIR ``workdir``, COPY of local
files ``add_local_file``/``add_local_dir``. Anything else (FROM, USER, COPY
--from, ...) is an error that says what to use instead: a half-understood
Dockerfile would build an image other than the one its author meant.

Example::

    image = Image.debian_slim().dockerfile_commands(
        "ENV MODE=fast", "WORKDIR /srv", "RUN echo ready > /srv/ready")
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from coldsnap.wire.errors import InvalidError

if TYPE_CHECKING:
    from coldsnap.image import Image

INSTEAD = {
    "FROM": "start from Image.from_registry(tag) or Image.debian_slim()",
    "USER": "build steps and containers run as root",
    "CMD": "coldsnap runs your functions, not a command",
    "ENTRYPOINT": "coldsnap runs your functions, not an entrypoint",
    "ADD": "use COPY for local files, or RUN curl ... for URLs",
}


def apply_dockerfile(image: Image, lines: list[str], context: Path) -> Image:
    """``image`` plus one step per instruction of ``lines``."""
    workdir = "/"
    for instruction in _instructions(lines):
        word, _, rest = instruction.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "RUN":
            image = image.run_commands(_shell_form(rest))
        elif word == "ENV":
            image = image.env(_env_pairs(rest))
        elif word == "WORKDIR":
            workdir = str(Path(workdir) / rest)
            image = image.workdir(workdir)
        elif word == "COPY":
            image = _copy(image, rest, context, workdir)
        else:
            why = INSTEAD.get(word, "it is not one of RUN, ENV, WORKDIR and COPY")
            raise InvalidError(f"dockerfile_commands: {word} is not supported here: {why}")
    return image


def _instructions(lines: list[str]) -> list[str]:
    """Logical lines: comments and blanks dropped, backslash continuations joined."""
    joined: list[str] = []
    pending = ""
    for raw in "\n".join(lines).splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending.strip())
    return joined


def _shell_form(rest: str) -> str:
    if rest.startswith("["):  # exec form: RUN ["apt-get", "install", "-y", "curl"]
        try:
            argv = json.loads(rest)
        except json.JSONDecodeError:
            raise InvalidError(f"dockerfile_commands: RUN {rest}: not a JSON list") from None
        return shlex.join(str(arg) for arg in argv)
    if not rest:
        raise InvalidError("dockerfile_commands: RUN needs a command")
    return rest


def _env_pairs(rest: str) -> dict[str, str]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:  # the old form: ENV NAME value with spaces
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise InvalidError(f"dockerfile_commands: ENV {rest}: expected NAME=value")
        pairs[name] = value
    return pairs


def _copy(image: Image, rest: str, context: Path, workdir: str) -> Image:
    words = shlex.split(rest)
    if any(word.startswith("--") for word in words):
        raise InvalidError(f"dockerfile_commands: COPY {rest}: options such as --from and "
                           "--chown are not supported; COPY local files only")
    if len(words) < 2:
        raise InvalidError(f"dockerfile_commands: COPY {rest}: expected COPY SRC... DEST")
    *sources, dest = words
    target = dest if dest.startswith("/") else str(Path(workdir) / dest)
    for source in sources:
        local = (context / source).resolve()
        into = target
        if len(sources) > 1 or dest.endswith("/"):
            into = str(Path(target) / local.name) if local.is_file() else target
        if local.is_dir():
            image = image.add_local_dir(local, into)
        else:
            image = image.add_local_file(local, into)
    return image
