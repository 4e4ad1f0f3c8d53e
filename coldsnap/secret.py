"""``Secret``: environment variables a function's containers get, kept off the code.

Example::

    app = coldsnap.App("mailer", secrets=[coldsnap.Secret.from_name("smtp")])

    @app.function(secrets=[coldsnap.Secret.from_dict({"REGION": "eu"})])
    def send(to: str) -> None:
        password = os.environ["SMTP_PASSWORD"]   # from `coldsnap secret create smtp ...`

A named secret lives on the server (`coldsnap secret create NAME K=V ...`); a
``from_dict`` / ``from_dotenv`` secret is read when the app is deployed and
stored beside it, never in its description. Either way functions refer to it,
so changing a value needs no new snapshot: containers read the current one.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from coldsnap.wire.errors import InvalidError
from coldsnap.wire.mounts import NAME_RULE, is_object_name


class Secret:
    """A named secret of the server, or values given in code (``from_dict``)."""

    def __init__(self, name: str | None = None,
                 load: Callable[[], dict[str, str]] | None = None, what: str = "") -> None:
        # Use the constructors: from_name, from_dict, from_dotenv.
        self.name = name
        self._load = load
        self._what = what or f"Secret.from_name({name!r})"

    def hydrate(self) -> Secret:
        """Modal's explicit lookup: a no-op here (a named secret is checked at deploy and
        read at each boot); returns the secret."""
        return self

    @staticmethod
    def from_name(name: str, *, environment_name: str | None = None,
                  required_keys: list[str] | None = None) -> Secret:
        """The server's secret ``name`` (made with `coldsnap secret create`); a deploy
        fails when it is missing. ``environment_name``/``required_keys`` are accepted
        for Modal's sake; the server checks only that the secret exists."""
        if not is_object_name(name):
            raise InvalidError(f"Secret.from_name({name!r}): a secret name is {NAME_RULE}.")
        return Secret(name=name)

    @staticmethod
    def from_dict(env_dict: dict[str, str | None] | None = None) -> Secret:
        """Values given in code; None values are left out (as Modal does)."""
        values = dict(env_dict or {})
        problems = [k for k, v in values.items()
                    if not isinstance(k, str) or not (v is None or isinstance(v, str))]
        if problems:
            raise InvalidError(
                f"Secret.from_dict(): keys and values must be str (None to leave one out); "
                f"check {', '.join(map(repr, problems))}.")
        kept = {k: v for k, v in values.items() if v is not None}
        return Secret(load=lambda: kept, what="Secret.from_dict(...)")

    @staticmethod
    def from_dotenv(path: str | os.PathLike[str] | None = None, *,
                    filename: str = ".env") -> Secret:
        """The variables of a ``.env`` file: ``filename`` in ``path``'s directory (a file's
        own, e.g. ``__file__``), or the working directory, or the nearest parent that has
        one. Read when the app is deployed, on the machine the server runs on."""
        start = Path(path) if path is not None else None

        def load() -> dict[str, str]:
            return read_dotenv(find_dotenv(start, filename))

        return Secret(load=load, what=f"Secret.from_dotenv({str(path) if path else ''!r})")

    @staticmethod
    def from_local_environ(env_keys: list[str]) -> Secret:
        """Not supported yet: the server imports the app to deploy it, so it can't see the
        deploying shell's environment. The error says what to use instead."""
        keys = " ".join(f"{key}=..." for key in env_keys) or "KEY=..."
        raise InvalidError(
            "Secret.from_local_environ() is not supported yet: coldsnap deploys by importing "
            "the app on the server, which can't see your shell's environment. Store the "
            f"values on the server with `coldsnap secret create NAME {keys}` and use "
            "Secret.from_name(NAME), or put them in a .env file and use Secret.from_dotenv().")

    @property
    def inline(self) -> bool:
        return self._load is not None

    def values(self) -> dict[str, str]:
        """The variables of an inline secret (read now); {} for a named one."""
        return dict(self._load()) if self._load is not None else {}

    def __repr__(self) -> str:
        return self._what  # never the values


def find_dotenv(start: Path | None, filename: str = ".env") -> Path:
    """``filename`` in ``start``'s directory (or the working directory) or a parent."""
    where = (start if start is not None else Path.cwd()).absolute()
    if start is not None and not where.is_dir():
        where = where.parent
    for directory in (where, *where.parents):
        if (directory / filename).is_file():
            return directory / filename
    raise InvalidError(f"Secret.from_dotenv(): no {filename} in {where} or its parents; "
                       f"create one with KEY=VALUE lines, or pass its directory.")


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefixes, quotes and ``#`` comments allowed)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise InvalidError(f"{path}:{number}: {exc}") from None
        values[key.strip()] = " ".join(words)
    return values
