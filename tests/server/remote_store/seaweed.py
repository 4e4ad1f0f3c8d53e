"""The shared store's tests use the S3 server coldsnap's benchmark starts (SeaweedFS)."""

from coldsnap.bench.seaweed import BUCKET, Seaweed, WeedMissing, free_port, new_prefix

__all__ = ["BUCKET", "Seaweed", "WeedMissing", "free_port", "new_prefix"]
