"""Which Debian suite gives debian_slim each Python, and the errors for the rest."""

from __future__ import annotations

import pytest

from coldsnap.wire.bases import DEBIAN_SUITES, DebianPython, available_pythons, debian_python
from coldsnap.wire.errors import InvalidError


@pytest.mark.parametrize(("version", "suite"), [("3.11", "bookworm"), ("3.13", "trixie")])
def test_a_minor_version_picks_the_suite_that_ships_it(version: str, suite: str) -> None:
    assert debian_python(version) == DebianPython(version, suite)


@pytest.mark.parametrize(("current", "expected"), [
    ((3, 11), DebianPython("3.11", "bookworm")),
    ((3, 13), DebianPython("3.13", "trixie")),
    # No suite ships 3.12 (or 3.14): the default suite's Python, not an error.
    ((3, 12), DebianPython("3.11", "bookworm")),
    ((3, 14), DebianPython("3.11", "bookworm")),
])  # fmt: skip
def test_none_picks_the_running_python_where_a_suite_ships_it(
    current: tuple[int, int], expected: DebianPython
) -> None:
    assert debian_python(None, current=current) == expected


def test_none_without_current_uses_this_interpreter() -> None:
    import sys

    assert debian_python(None) == debian_python(None, current=sys.version_info[:2])


@pytest.mark.parametrize("version", ["3.12", "3.9", "3.10", "2.7", "4.0"])
def test_a_version_no_suite_ships_is_an_error_listing_the_choices(version: str) -> None:
    with pytest.raises(InvalidError) as caught:
        debian_python(version)
    assert str(caught.value) == (f"python_version={version!r} is not available for "
                                 "debian_slim: choose 3.11 (bookworm) or 3.13 (trixie)")


def test_a_patch_version_is_refused_naming_the_minor_version_to_write() -> None:
    with pytest.raises(InvalidError) as caught:
        debian_python("3.11.7")
    message = str(caught.value)
    assert "python_version='3.11.7'" in message
    assert "python_version='3.11'" in message
    assert "bookworm's python3 package, whose patch level can't be chosen" in message


def test_a_patch_version_of_a_missing_minor_names_the_choices_instead() -> None:
    with pytest.raises(InvalidError, match=r"choose 3\.11 \(bookworm\) or 3\.13 \(trixie\)"):
        debian_python("3.12.1")


@pytest.mark.parametrize("version", ["3", "three", "3.11-slim", " 3.11", 3.11])
def test_what_is_not_a_version_says_how_to_write_one(version: object) -> None:
    with pytest.raises(InvalidError, match="is not a Python version: write it as a string"):
        debian_python(version)  # type: ignore[arg-type]


def test_every_suite_of_the_table_is_listed_in_the_choices() -> None:
    listed = available_pythons()
    assert all(f"{v} ({s})" in listed for v, s in DEBIAN_SUITES.items())
