"""An app's ``__file__`` at deploy is the client's file: paths built from it (Modal's
examples do ``Path(__file__).parent / "assets"``) name the client's directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = """
from pathlib import Path

import coldsnap

here = Path(__file__).parent
image = coldsnap.Image.from_host().add_local_dir(here / "assets", "/assets")
app = coldsnap.App("file-paths", image=image)


@app.function()
def listing() -> list:
    import os
    return sorted(os.listdir("/assets"))
"""


@pytest.fixture(scope="module")
def criu_server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def test_paths_from_dunder_file_resolve_in_the_clients_directory(
    criu_server: ServerHandle,
) -> None:
    project = criu_server.root / "project"
    (project / "assets").mkdir(parents=True)
    (project / "assets" / "a.txt").write_text("a")
    app_file = write_app(project, "file_paths", APP)
    criu_server.cli("deploy", str(app_file))  # run from another directory
    out = criu_server.python(
        "import coldsnap; print(coldsnap.Function.from_name('file-paths', 'listing').remote())")
    assert out.stdout.strip() == "['a.txt']"
