"""``modal.container_process``'s name, as a ported app spells it
(``modal.container_process.ContainerProcess`` in a type annotation)."""

from coldsnap.sandbox_io import ContainerProcess

__all__ = ["ContainerProcess"]
