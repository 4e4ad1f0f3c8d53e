"""The Python of an unpacked image, found by its PATH and landmarks, never run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coldsnap.server.images.oci_python import (
    ImagePython,
    NoUsablePython,
    find_python,
    image_python,
    resolve_inside,
)


def make(root: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)
    for link, target_path in (links or {}).items():
        at = root / link.lstrip("/")
        at.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target_path, at)
    return root


def test_debian_layout(tmp_path: Path) -> None:
    root = make(tmp_path, {"/usr/bin/python3.11": "", "/usr/lib/python3.11/os.py": ""},
                {"/usr/bin/python3": "python3.11"})
    assert find_python(root, None) == ImagePython("/usr/bin/python3", "3.11")


def test_official_image_layout_first_in_path_wins(tmp_path: Path) -> None:
    root = make(tmp_path, {
        "/usr/local/bin/python3.12": "", "/usr/local/lib/python3.12/os.py": "",
        "/usr/bin/python3.11": "", "/usr/lib/python3.11/os.py": "",
    }, {"/usr/local/bin/python3": "python3.12", "/usr/bin/python3": "python3.11"})
    assert find_python(root, "/usr/local/bin:/usr/bin") == ImagePython(
        "/usr/local/bin/python3", "3.12")
    assert find_python(root, "/usr/bin:/usr/local/bin") == ImagePython("/usr/bin/python3", "3.11")


def test_unversioned_binary_takes_its_prefix_landmark(tmp_path: Path) -> None:
    # conda-like: bin/python with no version in its name, one lib/pythonX.Y beside it.
    root = make(tmp_path, {"/opt/conda/bin/python": "", "/opt/conda/lib/python3.10/os.py": ""})
    assert find_python(root, "/opt/conda/bin:/usr/bin") == ImagePython(
        "/opt/conda/bin/python", "3.10")


def test_absolute_links_resolve_inside_the_image_not_the_host(tmp_path: Path) -> None:
    # The host has /usr/bin/python3.11; the image only links to it.
    root = make(tmp_path, {}, {"/usr/bin/python3": "/usr/bin/python3.11"})
    assert find_python(root, "/usr/bin") is None
    make(root, {"/usr/local/bin/python3.13": "", "/usr/local/lib/python3.13/os.py": ""},
         {"/usr/bin/python": "/usr/local/bin/python3.13"})
    assert find_python(root, "/usr/bin") == ImagePython("/usr/bin/python", "3.13")


def test_dotdot_and_loops_stay_inside(tmp_path: Path) -> None:
    root = make(tmp_path, {"/etc/passwd": "image's own"},
                {"/a/up": "../../../../etc/passwd", "/loop": "/loop"})
    assert resolve_inside(root, "/a/up") == "/etc/passwd"
    assert resolve_inside(root, "/loop") is None


def test_not_executable_or_a_directory_is_no_python(tmp_path: Path) -> None:
    root = make(tmp_path, {"/usr/bin/python3": ""})
    (root / "usr/bin/python3").chmod(0o644)
    (root / "bin/python3").mkdir(parents=True)
    assert find_python(root, "/bin:/usr/bin") is None


def test_unknown_version(tmp_path: Path) -> None:
    root = make(tmp_path, {"/usr/bin/python3": ""})
    found = find_python(root, "/usr/bin")
    assert found == ImagePython("/usr/bin/python3", None) and found.version_tuple() is None


def test_image_python_takes_a_recent_enough_one() -> None:
    found = ImagePython("/usr/local/bin/python3", "3.12")
    assert image_python("python:3.12-slim", found, None) is found


@pytest.mark.parametrize(("found", "words"), [
    (None, "has no python3 or python in the directories of its PATH"),
    (ImagePython("/usr/bin/python3", "3.9"), "has Python 3.9 at /usr/bin/python3; coldsnap "
                                             "needs 3.11 or newer"),
    (ImagePython("/usr/bin/python3", None), "of unknown version"),
])  # fmt: skip
def test_image_python_says_what_works(found: ImagePython | None, words: str) -> None:
    with pytest.raises(NoUsablePython) as raised:
        image_python("busybox:1", found, None)
    assert words in str(raised.value)
    assert "'python:3.11-slim'" in str(raised.value)
    assert "Image.debian_slim(python_version=...)" in str(raised.value)
    assert "add_python=...) with 3.11 (bookworm) or 3.13 (trixie)" in str(raised.value)


@pytest.mark.parametrize("own", [None, ImagePython("/usr/bin/python3", "3.9"),
                                 ImagePython("/usr/local/bin/python3", "3.12")])
def test_add_python_is_the_python_whatever_the_image_has(own: ImagePython | None) -> None:
    assert image_python("busybox:1", own, "3.11") == ImagePython(
        "/opt/coldsnap/python3.11/bin/python3.11", "3.11")


def test_add_python_of_a_version_coldsnap_lacks_says_which_it_has() -> None:
    with pytest.raises(NoUsablePython) as raised:
        image_python("busybox:1", None, "3.12")
    assert str(raised.value) == ("Image.from_registry('busybox:1', add_python='3.12'): coldsnap "
                                 "can add Python 3.11 (bookworm) or 3.13 (trixie), not '3.12'. "
                                 "Choose one of those.")
