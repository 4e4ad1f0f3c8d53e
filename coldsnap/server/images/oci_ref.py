"""Image references as a registry client reads them: ``python:3.11-slim`` and the like.

A reference names a registry (its domain, with an optional port), a repository
path, and a tag or a digest. The short forms mean what they mean to Docker:
no domain is Docker Hub (``docker.io``), and a one-part repository there lives
under ``library/``; no tag and no digest is ``:latest``.

Example::

    ref = ImageRef.parse("python:3.11-slim")
    ref.name          # 'docker.io/library/python:3.11-slim'
    ref.transport()   # 'docker://docker.io/library/python:3.11-slim'
    ref.is_local()    # False: TLS is verified
"""

from __future__ import annotations

import dataclasses
import re

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
# Hosts whose registries are this machine's own: plain HTTP is allowed there.
LOCAL_HOSTS = ("localhost", "::1", "[::1]")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class BadReference(ValueError):
    """A reference that no registry could serve; the message shows the accepted forms."""


def _bad(text: str, why: str) -> BadReference:
    return BadReference(
        f"{text!r} is not an image reference: {why}. Use NAME[:TAG] or NAME@sha256:DIGEST, "
        "e.g. 'python:3.11-slim', 'docker.io/library/python:3.11-slim' or "
        "'localhost:5000/team/app:1'"
    )


@dataclasses.dataclass(frozen=True)
class ImageRef:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """The reference ``text`` means, with Docker's defaults filled in."""
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not DIGEST.fullmatch(digest):
                raise _bad(text, f"the digest {digest!r} is not sha256: and 64 hex digits")
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, tag = rest.rsplit(":", 1)
            if not _TAG.fullmatch(tag):
                raise _bad(text, f"the tag {tag!r} has characters a tag can't have")
        domain, path = _split_domain(rest)
        if not path or not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
            raise _bad(text, "a repository name is lowercase letters, digits and . _ - /")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(domain, path, tag, digest)

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The full reference: domain, path, and the tag and/or digest."""
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"

    def transport(self) -> str:
        """The reference as skopeo reads it (``docker://...``)."""
        return f"docker://{self.name}"

    def pinned(self, digest: str) -> ImageRef:
        """This repository at ``digest``: what a pull copies, so a moving tag can't race."""
        return dataclasses.replace(self, tag=None, digest=digest)

    def host(self) -> str:
        """The registry's host name, without its port."""
        if self.domain.startswith("["):  # [::1]:5000
            return self.domain.split("]", 1)[0] + "]"
        return self.domain.rsplit(":", 1)[0]

    def is_local(self) -> bool:
        """A registry on this machine (localhost, 127.x, ::1): plain HTTP is fine."""
        host = self.host()
        return host in LOCAL_HOSTS or host.startswith("127.")


def _split_domain(rest: str) -> tuple[str, str]:
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path
