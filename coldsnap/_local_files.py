"""The local files an ``Image`` method reads on the client: requirements files,
pyproject.toml, and which files of a directory ``ignore=`` leaves out.

Example::

    requirement_lines(Path("requirements.txt"))        # ["six==1.16.0", ...]
    ignore_keys("add_local_dir", Path("src"), ["*.log"])  # {"ignore": ["*.log"]}
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from coldsnap.wire.container import in_container
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.image_spec import Ignore


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file: comments and blank lines dropped,
    option lines (``--extra-index-url X``) split into words, ``-r`` files followed."""
    found: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += requirement_lines(path.parent / line.split(None, 1)[1])
        elif line.startswith("-"):
            found += shlex.split(line)
        else:
            found.append(line)
    return found


def pyproject_requirements(path: Path, groups: list[str]) -> list[str]:
    try:
        project = tomllib.loads(path.read_text()).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidError(f"Image.pip_install_from_pyproject: {path} is not valid TOML: "
                           f"{exc}") from None
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for group in groups:
        if group not in optional:
            raise InvalidError(f"Image.pip_install_from_pyproject: {path} has no optional "
                               f"dependency group {group!r}; it has {sorted(optional)}")
        requirements += optional[group]
    return requirements


def ignore_keys(method: str, root: Path, ignore: Sequence[str] | Callable[[Path], bool]
                ) -> dict[str, list[str]]:
    """The layer keys of ``ignore=``: patterns travel as they are (the server applies
    them too); a function can't travel, so the paths it leaves out do."""
    if callable(ignore):
        return {"exclude": [] if in_container() else excluded_by(root, ignore)}
    if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):
        raise InvalidError(f"Image.{method}(ignore={ignore!r}): give a list of patterns "
                           "such as ['*.log', 'data/**'], or a function of a relative Path "
                           "that returns True for files to leave out")
    Ignore(tuple(ignore))("x")  # a bad pattern fails here, not on the server
    return {"ignore": list(ignore)} if ignore else {}


def excluded_by(root: Path, ignore: Callable[[Path], bool]) -> list[str]:
    """The files under ``root`` that ``ignore`` (called with each file's path relative
    to ``root``) leaves out; a directory whose files it all leaves out is one entry
    (a .venv's thousands of files become ".venv")."""
    files_out: list[str] = []
    whole: dict[str, bool] = {}  # relative dir -> every file under it is left out
    for directory, dirs, files in os.walk(root, topdown=False):
        here = Path(directory).relative_to(root)
        out = [str(here / name) for name in files if ignore(here / name)]
        files_out += out
        whole[str(here)] = len(out) == len(files) and all(
            whole.get(str(here / name), False) for name in dirs)
    dirs_out = {d for d, all_out in whole.items() if all_out and d != "."}
    return sorted(p for p in {*dirs_out, *files_out}
                  if not any(p.startswith(d + "/") for d in dirs_out))
