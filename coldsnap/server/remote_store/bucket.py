"""The S3 bucket behind ``COLDSNAP_STORE_URL``: a prefix in it, reached through boto3.

The endpoint and the credentials come from the standard AWS variables and files
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``~/.aws``), as for any other S3 client, so the same settings
work for AWS S3, MinIO, Ceph or SeaweedFS. Every failure to reach or use the
store is ``StoreUnavailable``, whose message says what to check.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from coldsnap.engine.store_traffic import FETCHED, UPLOADED, count_store_bytes

# A missing object; any other error means the store can't be used right now.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional write that lost: the object exists (S3 answers 409 to writes at once).
_EXISTS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
# A store that does not do conditional writes.
_NO_CONDITIONS = frozenset({"NotImplemented", "501"})


class StoreUnavailable(Exception):
    """The store could not be reached or refused a request (``reason`` says which)."""


@dataclasses.dataclass(frozen=True)
class StoreUrl:
    """``s3://BUCKET/PREFIX``, split; ``key(name)`` is an object's key under the prefix."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> StoreUrl:
        """ValueError naming the setting and the form it takes when ``url`` is not one."""
        scheme, _, rest = url.strip().partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme != "s3" or not bucket:
            raise ValueError(f"COLDSNAP_STORE_URL={url!r} is not an S3 URL: use "
                             "s3://BUCKET or s3://BUCKET/PREFIX (docs/store.md)")
        return cls(bucket, prefix.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class Bucket:
    """Get, put, probe and delete objects under the store's prefix (thread-safe)."""

    def __init__(self, url: StoreUrl, connections: int = 8) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise StoreUnavailable(
                f"COLDSNAP_STORE_URL={url} needs boto3: install coldsnap's cluster extra "
                "(pip install 'coldsnap[cluster]'; scripts/setup.sh does)") from None
        config = Config(
            connect_timeout=3, read_timeout=60, max_pool_connections=connections + 2,
            retries={"max_attempts": 2, "mode": "standard"},
            # Self-hosted stores (an endpoint of one's own) rarely serve bucket host names.
            s3={"addressing_style": "path" if _endpoint() else "auto"},
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.url = url
        self._client: Any = boto3.session.Session().client(
            "s3", config=config, region_name=region or "us-east-1")

    def get(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        try:
            response = self._client.get_object(Bucket=self.url.bucket, Key=self.url.key(name))
            data = bytes(response["Body"].read())
            count_store_bytes(FETCHED, len(data))  # /metrics: coldsnap_store_bytes_total
            return data
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise self._unavailable("reading", name, exc) from exc

    def get_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` up to ``end`` (exclusive) of an object that must exist."""
        try:
            response = self._client.get_object(Bucket=self.url.bucket, Key=self.url.key(name),
                                               Range=f"bytes={start}-{end - 1}")
            data = bytes(response["Body"].read())
        except Exception as exc:
            raise self._unavailable("reading", f"{name} (bytes {start}-{end - 1})", exc) from exc
        count_store_bytes(FETCHED, len(data))
        return data

    def list(self, under: str) -> list[str]:
        """The names of the objects whose name starts with ``under``."""
        names, prefix = [], self.url.key(under)
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.url.bucket, Prefix=prefix)
            for page in pages:
                names += [item["Key"][len(prefix) - len(under):]
                          for item in page.get("Contents", [])]
        except Exception as exc:
            raise self._unavailable("listing", under, exc) from exc
        return names

    def put(self, name: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.url.bucket, Key=self.url.key(name), Body=data)
        except Exception as exc:
            raise self._unavailable("writing", name, exc) from exc
        count_store_bytes(UPLOADED, len(data))

    def put_new(self, name: str, data: bytes) -> bool | None:
        """Write ``data`` unless the object exists (``If-None-Match: *``): whether it was
        written; of hosts writing at once, one is. None where the store has no
        conditional writes (nothing written)."""
        try:
            self._client.put_object(Bucket=self.url.bucket, Key=self.url.key(name), Body=data,
                                    IfNoneMatch="*")
        except Exception as exc:
            code = _error_code(exc)
            if code in _EXISTS:
                return False
            if code in _NO_CONDITIONS:
                return None
            raise self._unavailable("writing", name, exc) from exc
        count_store_bytes(UPLOADED, len(data))
        return True

    def exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.url.bucket, Key=self.url.key(name))
            return True
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise self._unavailable("probing", name, exc) from exc

    def delete(self, name: str) -> None:
        try:
            self._client.delete_object(Bucket=self.url.bucket, Key=self.url.key(name))
        except Exception as exc:
            raise self._unavailable("deleting", name, exc) from exc

    def _unavailable(self, doing: str, name: str, exc: Exception) -> StoreUnavailable:
        endpoint = _endpoint() or "AWS S3"
        return StoreUnavailable(
            f"{doing} {self.url}/{name} at {endpoint} failed: {type(exc).__name__}: {exc} "
            "(check that the store runs and AWS_ENDPOINT_URL and the AWS credentials "
            "point at it)")


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in _MISSING


def _error_code(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    return str(error.get("Code", ""))
