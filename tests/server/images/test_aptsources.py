"""The Debian archive a base is built from, read from a host's apt sources."""

from __future__ import annotations

from pathlib import Path

from coldsnap.server.images.aptsources import (
    DEFAULT_MIRROR,
    DEFAULT_SECURITY,
    host_mirror,
    host_security_mirror,
    host_sources,
    image_sources,
)

# This machine's layout: bookworm and its security archive in debian.sources, and
# a testing suite added (for CRIU) in a file that sorts first.
DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""
FORKY_SOURCES = """\
Types: deb
URIs: http://forky.example/debian
Suites: forky
Components: main
"""


def apt_dir(tmp_path: Path, files: dict[str, str], sources_list: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / "sources.list.d" / name).write_text(text)
    if sources_list:
        (tmp_path / "sources.list").write_text(sources_list)
    return tmp_path


def test_the_archive_listing_the_suite_wins(tmp_path: Path) -> None:
    apt = apt_dir(tmp_path, {"coldsnap-forky.sources": FORKY_SOURCES,
                             "debian.sources": DEBIAN_SOURCES})
    assert host_mirror("bookworm", apt) == "http://mirror.example/debian"
    assert host_mirror("forky", apt) == "http://forky.example/debian"


def test_a_suite_no_source_lists_comes_from_the_first_debian_archive(tmp_path: Path) -> None:
    apt = apt_dir(tmp_path, {"debian.sources": DEBIAN_SOURCES})
    assert host_mirror("trixie", apt) == "http://mirror.example/debian"


def test_the_security_archive_is_never_the_mirror_but_goes_into_the_image(
    tmp_path: Path,
) -> None:
    apt = apt_dir(tmp_path, {"security.sources": DEBIAN_SOURCES.split("\n\n")[1]})
    assert host_mirror("bookworm", apt) == DEFAULT_MIRROR
    assert host_security_mirror(apt) == "http://security.example/debian-security"
    assert image_sources("bookworm", "http://m/debian", apt) == (
        "deb http://m/debian bookworm main\n"
        "deb http://m/debian bookworm-updates main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )


def test_one_line_sources_with_options_and_comments(tmp_path: Path) -> None:
    apt = apt_dir(tmp_path, {"old.list": "deb-src http://src.example/debian bookworm main\n"},
                  sources_list="# a comment\n"
                  "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main"
                  " contrib # trailing\n")
    assert [s.uri for s in host_sources(apt)] == ["http://one.example/debian"]
    assert host_mirror("bookworm", apt) == "http://one.example/debian"


def test_vendor_repositories_and_disabled_sources_are_not_debian(tmp_path: Path) -> None:
    apt = apt_dir(tmp_path, {
        "docker.list": "deb [arch=amd64] https://download.docker.com/linux/debian bookworm"
                       " stable\n",
        "nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
                              "Suites: nodistro\nComponents: main\n",
        "off.sources": "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
                       "Components: main\nEnabled: no\n",
    })  # fmt: skip
    assert host_mirror("bookworm", apt) == DEFAULT_MIRROR
    assert host_security_mirror(apt) == DEFAULT_SECURITY


def test_continuation_lines_and_several_uris(tmp_path: Path) -> None:
    apt = apt_dir(tmp_path, {"x.sources": "Types: deb deb-src\nURIs: http://a.example/debian\n"
                                          " http://b.example/debian\nSuites: trixie\n"
                                          "Components: main\n"})
    assert [s.uri for s in host_sources(apt)] == ["http://a.example/debian",
                                                   "http://b.example/debian"]
    assert host_mirror("trixie", apt) == "http://a.example/debian"


def test_no_sources_at_all_gives_deb_debian_org(tmp_path: Path) -> None:
    assert host_mirror("bookworm", tmp_path / "missing") == DEFAULT_MIRROR
