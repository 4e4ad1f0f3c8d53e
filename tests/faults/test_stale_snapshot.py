"""A package upgraded on the host after a snapshot: the next cold boot makes a new
snapshot instead of restoring the old modules over the new files."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

CALL = ("import coldsnap\n"
        "print(coldsnap.Function.from_name('test-square', 'square').remote(7))\n")


@pytest.fixture
def criu_server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


@pytest.fixture
def probe_package() -> Iterator[Path]:
    """A distribution 'installed' where the server's interpreter (a from_host() image's)
    looks: its metadata dir, which an upgrade renames."""
    path = Path(sysconfig.get_paths()["purelib"]) / "coldsnap_probe-1.0.dist-info"
    path.mkdir()
    try:
        yield path
    finally:
        for version in ("1.0", "2.0"):
            shutil.rmtree(path.with_name(f"coldsnap_probe-{version}.dist-info"),
                          ignore_errors=True)


def _square_on(image: str, directory: Path) -> Path:
    """tests/apps/square.py with ``image`` as the app's image."""
    source = (APPS / "square.py").read_text().replace(
        'coldsnap.App("test-square")', f'coldsnap.App("test-square", image={image})')
    return write_app(directory, "square", source)


@pytest.mark.parametrize(("image", "kinds"), [
    # The host's packages are in a from_host() image's memory: a new snapshot.
    ("coldsnap.Image.from_host()", ["snapshot-created", "restored", "snapshot-created"]),
    # A debian_slim() image sees none of them: its snapshot stays good.
    ("coldsnap.Image.debian_slim()", ["snapshot-created", "restored", "restored"]),
])
def test_a_host_package_upgrade_makes_a_new_snapshot_where_the_image_sees_it(
    criu_server: ServerHandle, probe_package: Path, tmp_path: Path, image: str,
    kinds: list[str]
) -> None:
    criu_server.cli("deploy", str(_square_on(image, tmp_path)))
    assert criu_server.python(CALL).stdout.strip() == "49"
    criu_server.cli("apps", "drain", "test-square")
    assert criu_server.python(CALL).stdout.strip() == "49"
    probe_package.rename(probe_package.with_name("coldsnap_probe-2.0.dist-info"))
    criu_server.cli("apps", "drain", "test-square")
    assert criu_server.python(CALL).stdout.strip() == "49"
    seen = [b["kind"] for b in reversed(stats(criu_server, "test-square")["boots"])
            if b["tag"] == "square"]
    assert seen == kinds
