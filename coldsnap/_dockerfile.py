"""``Image.dockerfile_commands``: the common Dockerfile instructions as image steps.

RUN becomes ``run_commands``, ENV ``env``, WORKDIR ``workdir``, COPY of local
files ``add_local_file``/``add_local_dir``; ARG declares a variable for the
instructions after it; LABEL, EXPOSE, STOPSIGNAL and MAINTAINER are metadata
that nothing here reads, so they are accepted and left out. Anything else
(FROM, USER, COPY --from, RUN --mount, ...) is an error that says what to use
instead: a half-understood Dockerfile would build an image other than the one
its author meant.

Variables are Docker's: ``$NAME`` and ``${NAME}`` in ENV, WORKDIR and COPY. An
ARG's value (its default: there are no build args) is substituted here; a name
the client can't know, such as the base image's ``PATH``, is left in the ENV
step for the server, which expands it against the image's environment
(``ImageSpec`` ``"expand"``). RUN gets the ARGs as exported variables.

Example::

    image = Image.debian_slim().dockerfile_commands(
        "ARG VERSION=1.2", "ENV PATH=/opt/tool/bin:$PATH", "WORKDIR /srv",
        "RUN echo $VERSION > /srv/version")
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from coldsnap.wire.errors import InvalidError
from coldsnap.wire.image_spec import expand, has_reference, layer_env

if TYPE_CHECKING:
    from coldsnap.image import Image

INSTEAD = {
    "FROM": "start from Image.from_registry(tag) or Image.debian_slim()",
    "USER": "build steps and containers run as root",
    "CMD": "coldsnap runs your functions, not a command",
    "ENTRYPOINT": "coldsnap runs your functions, not an entrypoint",
    "ADD": "use COPY for local files, or RUN curl ... for URLs",
    "SHELL": "RUN lines run with /bin/sh -c; call another shell in them (RUN bash -c '...')",
    "VOLUME": "an image's files are read-only layers; write to a path in the container, "
              "which keeps its writes while it runs",
    "HEALTHCHECK": "coldsnap starts a function's containers itself and sees when one dies",
    "ONBUILD": "an image is not a base for other Dockerfiles here; put the steps in the "
               "image that needs them",
}
# Metadata nothing in coldsnap reads: accepted, and left out of the image.
METADATA = ("LABEL", "EXPOSE", "STOPSIGNAL", "MAINTAINER")


@dataclasses.dataclass
class _Build:
    """The image so far, and what the client knows of its variables."""

    image: Image
    workdir: str
    args: dict[str, str]  # ARGs with a value
    env: dict[str, str]  # ENV values known here (not those the server expands)

    @property
    def scope(self) -> dict[str, str]:
        return {**self.args, **self.env}  # an ENV wins over an ARG of the same name


def apply_dockerfile(image: Image, lines: list[str], context: Path) -> Image:
    """``image`` plus one step per instruction of ``lines``."""
    known: dict[str, str] = {}  # the image's env so far, where the client knows it
    for layer in image.layers:
        if layer["op"] == "env" and not layer.get("expand"):
            known.update(layer["vars"])
        elif layer["op"] == "env":
            known = {k: v for k, v in known.items() if k not in layer["vars"]}
    build = _Build(image, image.spec.workdir() or "/", {}, known)
    for instruction in _instructions(lines):
        word, _, rest = instruction.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word in METADATA:
            continue
        step = STEPS.get(word)
        if step is None:
            why = INSTEAD.get(word, "it is not one of RUN, ENV, ARG, WORKDIR and COPY")
            raise InvalidError(f"dockerfile_commands: {word} is not supported here: {why}")
        step(build, rest, context)
    return build.image


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


def _run(build: _Build, rest: str, context: Path) -> None:
    if rest.startswith("--"):
        flag = rest.split()[0]
        raise InvalidError(f"dockerfile_commands: RUN {flag}: RUN's options (--mount, "
                           "--network, --security) are not supported; each RUN runs in a "
                           "build container with network and no cache mounts. Drop the option.")
    if rest.startswith("["):  # exec form: RUN ["apt-get", "install", "-y", "curl"]
        try:
            argv = json.loads(rest)
        except json.JSONDecodeError:
            raise InvalidError(f"dockerfile_commands: RUN {rest}: not a JSON list") from None
        rest = shlex.join(str(arg) for arg in argv)
    if not rest:
        raise InvalidError("dockerfile_commands: RUN needs a command")
    args = {k: v for k, v in build.args.items() if k not in build.env}
    if args:  # as Docker gives a RUN its ARGs: in its environment
        rest = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in args.items()) + \
            "; " + rest
    build.image = build.image.run_commands(rest)


def _env(build: _Build, rest: str, context: Path) -> None:
    words = _words(rest, "ENV")
    if words and "=" not in words[0]:  # the old form: ENV NAME value with spaces
        pairs = {words[0]: " ".join(words[1:])}
    else:
        pairs = dict(_pair(word, "ENV", rest) for word in words)
    if not pairs:
        raise InvalidError("dockerfile_commands: ENV needs NAME=value")
    values = {k: expand(v, build.scope, keep_unknown=True) for k, v in pairs.items()}
    if any(has_reference(v) for v in values.values()):  # the server knows the rest
        layer = {"op": "env", "vars": dict(sorted(values.items())), "expand": True}
        build.image = build.image._add(layer)
        for name in values:
            build.env.pop(name, None)
        return
    literal = layer_env({"vars": values, "expand": True}, {})  # only the escapes go
    build.image = build.image.env(literal)
    build.env.update(literal)


def _arg(build: _Build, rest: str, context: Path) -> None:
    for word in _words(rest, "ARG"):
        name, sep, value = word.partition("=")
        if not name.isidentifier():
            raise InvalidError(f"dockerfile_commands: ARG {rest}: expected NAME or NAME=default")
        if sep:
            build.args[name] = expand(value, build.scope)
        else:
            build.args.pop(name, None)  # no build args here: declared, without a value


def _workdir(build: _Build, rest: str, context: Path) -> None:
    path = _known(build, rest, "WORKDIR")
    if not path:
        raise InvalidError("dockerfile_commands: WORKDIR needs a path")
    build.workdir = str(PurePosixPath(build.workdir) / path)
    build.image = build.image.workdir(build.workdir)


def _copy(build: _Build, rest: str, context: Path) -> None:
    words = [_known(build, word, "COPY") for word in shlex.split(rest)]
    if any(word.startswith("--") for word in words):
        raise InvalidError(f"dockerfile_commands: COPY {rest}: options such as --from and "
                           "--chown are not supported; COPY local files only")
    if len(words) < 2:
        raise InvalidError(f"dockerfile_commands: COPY {rest}: expected COPY SRC... DEST")
    *sources, dest = words
    target = str(PurePosixPath(build.workdir) / dest) + ("/" if dest.endswith("/") else "")
    for source in sources:
        local = (context / source).resolve()
        into = target
        if len(sources) > 1 and not local.is_dir():
            into = target.rstrip("/") + "/"  # into the directory, by its name
        if local.is_dir():
            build.image = build.image.add_local_dir(local, into.rstrip("/") or "/")
        else:
            build.image = build.image.add_local_file(local, into)


STEPS = {"RUN": _run, "ENV": _env, "ARG": _arg, "WORKDIR": _workdir, "COPY": _copy}


def _known(build: _Build, text: str, instruction: str) -> str:
    """``text`` with its variables substituted; one the client can't know (from the
    base image's environment) is an error: these paths are fixed here."""
    partial = expand(text, build.scope, keep_unknown=True)
    if has_reference(partial):
        raise InvalidError(
            f"dockerfile_commands: {instruction} {text}: it names a variable whose value "
            "is not known when the image is defined (only ARGs and ENVs set in this image "
            "are): write the value out")
    return expand(partial, {})


def _pair(word: str, instruction: str, rest: str) -> tuple[str, str]:
    name, sep, value = word.partition("=")
    if not sep or not name:
        raise InvalidError(f"dockerfile_commands: {instruction} {rest}: expected NAME=value")
    return name, value


def _words(text: str, instruction: str) -> list[str]:
    """Split ``text`` as Docker splits ENV and ARG: on blanks outside quotes, quotes
    removed. Words keep ``expand``'s syntax: a ``$`` or backslash that was quoted or
    escaped comes out as ``\\$`` or ``\\\\``, so it stays literal."""
    words: list[str] = []
    word: list[str] | None = None
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        literal = quote == "'" or (char == "\\" and quote != "'")
        if char == "\\" and quote != "'" and i + 1 < len(text):
            i += 1
            char = text[i]
            if quote == '"' and char not in '"$\\':
                char = "\\" + char  # in double quotes a backslash before others stays
        elif char in "'\"" and quote in ("", char):
            quote = "" if quote else char
            word = word if word is not None else []
            i += 1
            continue
        elif char.isspace() and not quote:
            if word is not None:
                words.append("".join(word))
            word, i = None, i + 1
            continue
        word = word if word is not None else []
        word.append(char.replace("\\", "\\\\").replace("$", "\\$") if literal else char)
        i += 1
    if quote:
        raise InvalidError(f"dockerfile_commands: {instruction} {text}: unterminated {quote}")
    if word is not None:
        words.append("".join(word))
    return words
