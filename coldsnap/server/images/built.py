"""A built image: what its containers run and see. Stored with each deployed version."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coldsnap.server.images.steps import DEFAULT_PATH


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """What containers of a built image need: interpreter, lower layers, env; for an
    image with a root of its own, that root and the coldsnap runtime's layer."""

    hash: str
    python: str
    layers: tuple[Path, ...]  # highest first, as ContainerSpec.layers wants them
    env: dict[str, str]
    base: str = ""  # the image's root filesystem; "": the host's (from_host)
    workdir: str = ""  # the containers' working directory; "": the app's code dir
    runtime: str = ""  # the runtime layer (runtime_layer.py) of a base image

    def container_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` plus a PATH that finds the image's venv first, then the image's env."""
        first = str(Path(self.python).parent)
        path = DEFAULT_PATH if first in DEFAULT_PATH.split(":") else f"{first}:{DEFAULT_PATH}"
        return {"PATH": path, **env, **self.env}

    def to_record(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "python": self.python,
            "layers": [str(p) for p in self.layers],
            "env": dict(self.env),
            "base": self.base,
            "workdir": self.workdir,
            "runtime": self.runtime,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BuiltImage:
        return cls(
            hash=record["hash"],
            python=record["python"],
            layers=tuple(Path(p) for p in record["layers"]),
            env=dict(record["env"]),
            base=record.get("base", ""),
            workdir=record.get("workdir", ""),
            runtime=record.get("runtime", ""),
        )
