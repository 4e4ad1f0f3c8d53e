"""The coldsnap runtime as a layer, for containers whose root is an image of its own.

A container on ``Image.debian_slim()`` or ``Image.from_registry(...)`` runs the
image's Python, which has never heard of coldsnap. The server gives it the
runtime as one more read-only layer, without installing anything into the
user's image::

    /opt/coldsnap/lib/coldsnap/...     this server's coldsnap package
    /opt/coldsnap/lib/cloudpickle/...  and what it needs at run time (uvicorn, h11,
                                       wsproto, click, a2wsgi: web endpoints)
    /opt/coldsnap/launch.py            python launch.py MODULE ARGS: runs MODULE
    /opt/coldsnap/bin/tini-static      every container's pid 1 (engine/nsinit.py)

``launch.py`` puts ``/opt/coldsnap/lib`` at the *end* of ``sys.path``, so the
image's own packages win (a user's newer cloudpickle, say), and leaves no
``PYTHONPATH`` behind for the user's subprocesses.

The layer is content-addressed (a hash of the files), made once per coldsnap
version under ``<images>/runtime/<hash>``; a server upgraded in place makes a
new one, and versions deployed before keep theirs (their snapshots hold it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import a2wsgi
import click
import cloudpickle
import h11
import uvicorn
import wsproto

from coldsnap.engine.sandbox import CONTAINER_INIT, IMAGE_INIT

MOUNT = "/opt/coldsnap"
LAUNCH = f"{MOUNT}/launch.py"
# The packages the runtime imports: this coldsnap, and what it needs (web endpoints:
# uvicorn and what it imports, all pure Python).
PACKAGE_DIRS = (Path(__file__).resolve().parents[2], Path(cloudpickle.__file__).parent,
                *(Path(module.__file__ or "").parent
                  for module in (uvicorn, h11, wsproto, click, a2wsgi)))
LAUNCH_SOURCE = f'''"""coldsnap's launcher: python {LAUNCH} MODULE [ARGS...] runs MODULE."""
import runpy
import sys

sys.path.pop(0)  # this script's directory
sys.path.append("{MOUNT}/lib")
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
'''


def runtime_argv(python: str, module: str, *args: str) -> list[str]:
    """argv that runs ``module`` (``coldsnap._runtime``...) with the image's ``python``."""
    return [python, LAUNCH, module, *args]


# images dir -> its runtime layer, once this process made or found it: hashing the
# package reads every file of it, and each build step asks.
_MADE: dict[Path, Path] = {}


def ensure_runtime_layer(images: Path) -> Path:
    """The runtime layer of this server's coldsnap, made now if it isn't there."""
    known = _MADE.get(images)
    if known is not None and known.is_dir():
        return known
    _MADE[images] = layer = _make_runtime_layer(images)
    return layer


def _make_runtime_layer(images: Path) -> Path:
    sources = list(PACKAGE_DIRS)
    digest = hashlib.sha256(LAUNCH_SOURCE.encode())
    digest.update(Path(CONTAINER_INIT).read_bytes())
    for source in sources:
        for path in _files(source):
            digest.update(str(path.relative_to(source.parent)).encode() + b"\0")
            digest.update(path.read_bytes())
    layer = images / "runtime" / digest.hexdigest()[:16]
    if layer.is_dir():
        return layer
    tmp = layer.with_name(f".{layer.name}.{uuid.uuid4().hex[:6]}.tmp")
    lib = tmp / MOUNT.lstrip("/") / "lib"
    lib.mkdir(parents=True)
    for source in sources:
        for path in _files(source):
            target = lib / path.relative_to(source.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    (tmp / LAUNCH.lstrip("/")).write_text(LAUNCH_SOURCE)
    init = tmp / IMAGE_INIT.lstrip("/")
    init.parent.mkdir()
    shutil.copy2(CONTAINER_INIT, init)
    try:
        os.rename(tmp, layer)
    except OSError:  # another server made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not layer.is_dir():
            raise
    return layer


def _files(package_dir: Path) -> list[Path]:
    """A package's source files, without bytecode caches, in a stable order."""
    return sorted(p for p in package_dir.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
