"""Which Debian archive this host's apt uses, read from its sources, and the sources
a base image gets.

Both formats are read: deb822 files (``/etc/apt/sources.list.d/*.sources``, with
``URIs:`` and ``Suites:`` fields) and one-line ones (``/etc/apt/sources.list`` and
``*.list``: ``deb [options] URI SUITE COMPONENT...``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
APT_DIR = Path("/etc/apt")
# A source lists one of these suites, with component main, if it is a Debian archive
# and not some vendor's repository (whose suites are named otherwise or whose
# components are not "main").
DEBIAN_CODENAMES = frozenset({"buster", "bullseye", "bookworm", "trixie", "forky", "duke",
                              "sid", "oldstable", "stable", "testing", "unstable"})
_ONE_LINE = re.compile(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)((?:\s+\S+)*)\s*")


@dataclasses.dataclass(frozen=True)
class Source:
    """One apt source: a URI with its suites and components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def is_debian_archive(self) -> bool:
        return "main" in self.components and bool(DEBIAN_CODENAMES & set(self.suites))

    @property
    def is_security(self) -> bool:
        return any(s.endswith("-security") for s in self.suites)


def host_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    """The Debian archive URI this host's apt uses: the one listing ``suite`` first,
    then any archive of Debian (it carries every suite), else deb.debian.org."""
    archives = [s for s in host_sources(apt_dir) if s.is_debian_archive and not s.is_security]
    listing = [s for s in archives if suite in s.suites]
    chosen = (listing or archives)[:1]
    return chosen[0].uri.rstrip("/") if chosen else DEFAULT_MIRROR


def host_security_mirror(apt_dir: Path = APT_DIR) -> str:
    """The host's Debian security archive, else security's own deb.debian.org address."""
    found = [s for s in host_sources(apt_dir) if s.is_security and "main" in s.components]
    return found[0].uri.rstrip("/") if found else DEFAULT_SECURITY


def host_sources(apt_dir: Path = APT_DIR) -> list[Source]:
    """Every enabled binary (``deb``) source of the host's apt, in apt's reading order."""
    sources = _one_line(apt_dir / "sources.list")
    directory = apt_dir / "sources.list.d"
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        if path.suffix == ".list":
            sources += _one_line(path)
        elif path.suffix == ".sources":
            sources += _deb822(path)
    return sources


def image_sources(suite: str, mirror: str, apt_dir: Path = APT_DIR) -> str:
    """A base's /etc/apt/sources.list: its suite, the suite's updates and security."""
    security = host_security_mirror(apt_dir)
    return (f"deb {mirror} {suite} main\n"
            f"deb {mirror} {suite}-updates main\n"
            f"deb {security} {suite}-security main\n")


def _one_line(path: Path) -> list[Source]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    sources = []
    for line in lines:
        match = _ONE_LINE.fullmatch(line.split("#", 1)[0].strip())
        if match:
            sources.append(Source(match[1], (match[2],), tuple(match[3].split())))
    return sources


def _deb822(path: Path) -> list[Source]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = _fields(stanza)
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        sources += [Source(uri, suites, components) for uri in fields.get("uris", "").split()]
    return sources


def _fields(stanza: str) -> dict[str, str]:
    """A deb822 stanza's fields by lower-cased name; continuation lines joined."""
    fields: dict[str, str] = {}
    name = ""
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and name:
            fields[name] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields
