"""What a failed pull means, in words: skopeo's errors turned into causes and fixes.

skopeo ends a failure with one ``level=fatal msg="..."`` line whose text comes
from the registry or the network stack; the table below maps its telling words
to a cause and what to do, the first match winning.

Example::

    explain_failure(ref, argv, tail, 1, None)
    # "localhost:5000/app:2 is not in the registry localhost:5000: ..."
"""

from __future__ import annotations

import platform
import re
import shlex
import shutil

from coldsnap.server.images.oci_ref import ImageRef
from coldsnap.server.images.steps import BuildError

INSTALL = ("run scripts/setup.sh as root, or: apt-get install -y skopeo umoci "
           "(Debian 12 and newer)")
_FATAL = re.compile(r'level=fatal msg="(.*)"\s*$')

# (words any of which tells the cause, what it means and what to do). Placeholders:
# {ref} the full reference, {domain} the registry, {repo} the repository.
CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("manifest unknown", "name unknown"),
     "{ref} is not in the registry {domain}: no such repository, or no such tag in it. "
     "Check the name and the tag; `skopeo list-tags docker://{repo}` lists the tags."),
    (("unauthorized", "authentication required", "denied", "bearer token",
      "invalid username/password"),
     "the registry {domain} wants credentials for {ref} (or refused the ones it got). "
     "Log in as the user the coldsnap server runs as: `skopeo login {domain}` (or add "
     "them to ~/.docker/config.json), then try again."),
    (("server gave http response to https client",),
     "the registry {domain} speaks plain HTTP, not HTTPS. If the network to it is "
     "trusted, allow plain HTTP for it (insecure=True); otherwise give it TLS."),
    (("x509", "certificate"),
     "the registry {domain}'s TLS certificate was not accepted. Install its CA "
     "certificate on this host (/usr/local/share/ca-certificates, then "
     "update-ca-certificates), or, for a trusted network only, insecure=True."),
    (("no image found in manifest list", "choosing an image from manifest list"),
     "{ref} has no image for this machine (linux/{arch}). Pick a tag built for it."),
    (("connection refused", "no such host", "i/o timeout", "network is unreachable",
      "no route to host", "connection reset", "tls handshake timeout", "dial tcp",
      "eof"),
     "the registry {domain} can't be reached. Check that it is running, that this host "
     "can reach it (its name resolves, no firewall in between), and try again."),
)


class PullError(BuildError):
    """Pulling or unpacking an image failed; the message says why and what to do."""


def missing_tools(names: list[str]) -> str | None:
    """A message naming the tools of ``names`` that are not installed, or None."""
    absent = [name for name in names if shutil.which(name) is None]
    if not absent:
        return None
    return (f"{' and '.join(absent)} not installed: coldsnap pulls images from registries "
            f"with skopeo and unpacks them with umoci. To install them, {INSTALL}.")


def explain_failure(ref: ImageRef, argv: list[str], tail: list[str], code: int | None,
                    cached_digest: str | None) -> str:
    """The message of a failed ``skopeo`` run: cause, fix, and skopeo's own words."""
    detail = _fatal_message(tail)
    if code is None:
        cause = (f"talking to the registry {ref.domain} about {ref.name} timed out. Check "
                 "that it is reachable and try again.")
    else:
        cause = _cause(detail, ref)
    if cached_digest and (code is None or "can't be reached" in cause):
        cause += (f" A copy pulled earlier is cached: use '{ref.pinned(cached_digest).name}' "
                  "to use it without the registry (a tag always asks the registry).")
    return (f"cannot pull {ref.name}: {cause}\n  command: {shlex.join(argv)}\n"
            f"  skopeo said: {detail}")


def _cause(detail: str, ref: ImageRef) -> str:
    lowered = detail.lower()
    for words, text in CAUSES:
        if any(word in lowered for word in words):
            return text.format(ref=ref.name, domain=ref.domain, repo=ref.repository,
                               arch=_arch())
    return "skopeo failed; its message is below."


def _fatal_message(tail: list[str]) -> str:
    for line in reversed(tail):
        match = _FATAL.search(line)
        if match:
            return match[1].replace('\\"', '"')
    return "\n".join(tail[-5:]) or "(no output)"


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
