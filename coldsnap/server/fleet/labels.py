"""What a host agent keeps about each container, so that a restarted control plane can
serve with it: ``ContainerLabels`` (sent once the container is ready), and
``FoundContainer`` (a live container a starting control plane found on an agent)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ContainerLabels:
    """A ready container as its pool knew it: which function version, how it booted."""

    app: str
    version: str
    tag: str
    variant: str  # a class variant's key; "" for the default (server/variants.py)
    kind: str  # how it booted (boot.BootKind)
    boot_id: int  # its row in the state db's boots
    timings: dict[str, float]
    web_ports: dict[str, int]
    # The variant itself (Variant.to_dict()), to make its pool again; {} by default.
    variant_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    # What it takes of its host (placement.Demand); the fleet fills these in.
    cpus: float = 1.0
    memory_mb: float = 0.0
    gpus: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerLabels:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def label(self) -> str:
        variant = f"@{self.variant}" if self.variant else ""
        return f"{self.app}/{self.tag}{variant} version {self.version[:12]}"


@dataclasses.dataclass(frozen=True)
class FoundContainer:
    """A live container an earlier control plane left on ``host``; ``labels`` None: it was
    still booting then."""

    host: str
    container_id: str
    labels: ContainerLabels | None

    def describe(self) -> str:
        what = self.labels.label if self.labels is not None else "a container still booting"
        return f"container {self.container_id} ({what}) on host {self.host}"
