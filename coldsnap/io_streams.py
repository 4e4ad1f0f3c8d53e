"""``modal.io_streams``'s names: a sandbox process's streams (sandbox_io.py)."""

from coldsnap.sandbox_io import StreamReader, StreamWriter

__all__ = ["StreamReader", "StreamWriter"]
