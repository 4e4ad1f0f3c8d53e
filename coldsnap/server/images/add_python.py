"""``add_python``: a self-contained CPython as one layer, for images without a usable one.

``Image.from_registry(tag, add_python="3.11")`` runs functions in an image whose own
Python is missing or too old, as Modal's does. The Python added is Debian's, taken
from the ``debian_slim`` base of that version (``debian.py``; bookworm for 3.11,
trixie for 3.13), which the host builds once anyway. Its layer holds::

    /opt/coldsnap/python3.11/bin/python3.11     the interpreter (python3, python, pip beside it)
    /opt/coldsnap/python3.11/lib/python3.11/    the standard library with lib-dynload
    /opt/coldsnap/python3.11/lib/python3/dist-packages/   pip, setuptools, wheel
    /opt/coldsnap/python3.11/share/python-wheels/         ensurepip's wheels (venv)
    /opt/coldsnap/python3.11/lib/x86_64-linux-gnu/        ld-linux, libc and every
                                                          library the above loads

and nothing else: the image's own ``/lib`` and ``/usr`` are never used, so it runs on
busybox, Alpine (musl) or an old glibc alike. The interpreter is made relocatable
with ``patchelf``: its ELF interpreter is the prefix's ``ld-linux`` and its
``DT_RPATH`` (which, unlike ``DT_RUNPATH``, also serves the libraries it loads and
the extension modules it dlopens) the prefix's library directory. So the process
is the interpreter itself, as usual: ``sys.executable``, subprocesses of it (pip's
build isolation, multiprocessing) and CRIU see a normal Python. libstdc++ and
libgcc_s are made dependencies of the interpreter too, because manylinux wheels
expect the system to provide them, and a wheel's own ``DT_RUNPATH`` hides the
interpreter's ``DT_RPATH`` from its lookups; loaded up front, they are found by name.

A layer is named by the hash of its base's recipe and ``RECIPE_VERSION`` and kept in
the host-wide base cache next to the bases (``Settings.base_dir``), made once per
host: built in a ``.building-*`` directory, checked by running it chrooted into
the layer alone (no other file of any system in reach), then renamed into place.

Example::

    added = ensure_python_layer("3.11", Path("/var/cache/coldsnap/bases"), print)
    added.python  # '/opt/coldsnap/python3.11/bin/python3.11'
    added.layer   # .../bases/python3.11-<hash>/layer: a lower layer for containers
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from coldsnap.server.images import trees
from coldsnap.server.images.debian import PYTHON as BASE_PYTHON
from coldsnap.server.images.debian import DebianBase, ensure_debian_base
from coldsnap.server.images.oci_python import ADDED_PREFIX, added_python, resolve_inside
from coldsnap.server.images.steps import DEFAULT_PATH, BuildError, Progress

# Bump when what a layer holds changes: old layers are then made again.
RECIPE_VERSION = 1
INFO_FILE = "python.json"
BUILDING_PREFIX = ".building-"
# Loaded up front for manylinux wheels (see the module's docstring).
PRELOADED = ("libstdc++.so.6", "libgcc_s.so.1")
# Where a Debian root keeps shared libraries, by the loader's search order.
LIBRARY_DIRS = ("lib/{triplet}", "usr/lib/{triplet}", "lib", "usr/lib")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's, from ca-certificates
PROBE = ("import os, sys, ssl, sqlite3, ctypes, ensurepip, zlib, lzma, bz2, decimal; "
         "from pip._vendor import certifi; assert os.path.isfile(certifi.where()); "
         "assert ensurepip.version(); print('%d.%d.%d' % sys.version_info[:3])")


@dataclasses.dataclass(frozen=True)
class AddedPython:
    """A made layer: where it is on the host and where its Python is in a container."""

    layer: Path  # a lower layer: holds opt/coldsnap/pythonX.Y/...
    python: str  # the interpreter's path in the container
    python_version: str  # exact: "3.11.2"
    key: str  # names the layer's directory

    @property
    def bin_dir(self) -> str:
        return str(PurePosixPath(self.python).parent)

    def image_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """An image's ``env`` with this Python's ``bin`` first on its PATH, so ``python``,
        ``python3`` and ``pip`` in run_commands are this one too."""
        return {**env, "PATH": f"{self.bin_dir}:{env.get('PATH') or DEFAULT_PATH}"}


def prefix_of(python_version: str) -> str:
    """Where the Python ``X.Y`` lives in a container: ``/opt/coldsnap/pythonX.Y``."""
    return f"{ADDED_PREFIX}/python{python_version}"


def ensure_python_layer(python_version: str, base_dir: Path, progress: Progress) -> AddedPython:
    """The layer with Python ``python_version`` ("3.11"), made first if the host lacks it.

    InvalidError for a version no debian_slim base has; BuildError if making it fails.
    """
    base = ensure_debian_base(python_version, base_dir, progress)
    key = hashlib.sha256(f"{base.key}\0{RECIPE_VERSION}".encode()).hexdigest()
    final = base_dir / f"python{python_version}-{key[:16]}"
    found = load_layer(final)
    if found is not None:
        return found
    _remove_leftovers(final)
    progress(f"Making Python {python_version} for add_python from the debian_slim base "
             f"(Debian {base.suite}; once per host) ...")
    made = _make_in_place(base, python_version, key, final)
    progress(f"Made Python {made.python_version} for add_python at {final}.")
    return made


def _make_in_place(base: DebianBase, python_version: str, key: str, final: Path
                   ) -> AddedPython:
    """Make the layer in a directory of its own, then rename it to ``final``; two
    servers making it at once both end up with the one renamed first."""
    work = final.with_name(f"{BUILDING_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        info = {**_make(base, python_version, work / "layer"), "key": key}
        (work / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        os.rename(work, final)
    except OSError as exc:
        trees.discard(work)
        found = load_layer(final)  # another server made it meanwhile
        if found is not None:
            return found
        damaged = f" {final} exists but is incomplete: remove it." if final.exists() else ""
        raise BuildError(f"making Python {python_version} for add_python failed: {exc}."
                         f"{damaged} Check free space under {final.parent}, then deploy "
                         "again.") from exc
    except BaseException:
        trees.discard(work)
        raise
    made = load_layer(final)
    assert made is not None
    return made


def _remove_leftovers(final: Path) -> None:
    """Remove what builds of ``final`` killed before they finished left behind."""
    for stale in final.parent.glob(f"{BUILDING_PREFIX}{final.name}-*"):
        pid = stale.name.removeprefix(f"{BUILDING_PREFIX}{final.name}-").split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            trees.discard(stale)


def load_layer(directory: Path) -> AddedPython | None:
    """The layer in ``directory``, or None while it is absent (or incomplete)."""
    try:
        info = json.loads((directory / INFO_FILE).read_text())
        return AddedPython(directory / "layer", info["python"], info["python_version"],
                           info["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _make(base: DebianBase, python_version: str, layer: Path) -> dict[str, Any]:
    """Copy the base's Python into ``layer`` under its prefix, relocate it, check it."""
    patchelf = shutil.which("patchelf")
    if patchelf is None:
        raise BuildError("add_python needs patchelf on the server to make Debian's Python "
                         "relocatable: run `apt-get install patchelf` (scripts/setup.sh does).")
    root = base.rootfs
    exe = resolve_inside(root, BASE_PYTHON)
    if exe is None:
        raise BuildError(f"the debian_slim base {root} has no {BASE_PYTHON}: remove the base's "
                         "directory so that it is built again, then deploy again.")
    prefix = layer / prefix_of(python_version).lstrip("/")
    name = f"python{python_version}"
    _copy_tree(root / f"usr/lib/{name}", prefix / "lib" / name)
    _copy_tree(root / "usr/lib/python3/dist-packages", prefix / "lib/python3/dist-packages")
    _copy_tree(root / "usr/share/python-wheels", prefix / "share/python-wheels")
    (prefix / "lib" / name / "EXTERNALLY-MANAGED").unlink(missing_ok=True)
    (prefix / CA_BUNDLE.lstrip("/")).parent.mkdir(parents=True)
    _copy_library(root, CA_BUNDLE, prefix / CA_BUNDLE.lstrip("/"))
    _retarget(prefix, name)
    (prefix / "bin").mkdir()
    interpreter = prefix / "bin" / name
    shutil.copy2(root / exe.lstrip("/"), interpreter)
    libdir = _copy_libraries(root, [interpreter, *prefix.glob(f"lib/{name}/lib-dynload/*.so")],
                             prefix, patchelf)
    inside = f"/{libdir.relative_to(layer)}"
    loader = _run([patchelf, "--print-interpreter", str(interpreter)]).strip()
    # One change per call: patchelf 0.14 (bookworm's) garbles the string table when
    # --add-needed and --set-rpath come in one call.
    for change in (["--set-interpreter", f"{inside}/{PurePosixPath(loader).name}"],
                   *(["--add-needed", lib] for lib in PRELOADED),
                   ["--force-rpath", "--set-rpath", inside]):
        _run([patchelf, *change, str(interpreter)])
    _write_commands(prefix, name)
    version = _probe(layer, added_python(python_version))
    return {"python": added_python(python_version), "python_version": version,
            "suite": base.suite, "base": base.key, "recipe": RECIPE_VERSION,
            "size_bytes": trees.tree_bytes(layer)}


def _copy_tree(source: Path, target: Path) -> None:
    if not source.is_dir():
        raise BuildError(f"the debian_slim base lacks {source}: remove the base's directory "
                         "so that it is built again, then deploy again.")
    # symlinks=True: a link inside Debian's tree (to a certificate bundle, say) stays one.
    shutil.copytree(source, target, symlinks=True)


def _retarget(prefix: Path, name: str) -> None:
    """Point what Debian's Python looks for under /usr/share and /etc at the prefix:
    ensurepip's wheels (so ``python -m venv`` works) and the CA bundle that Debian's
    pip uses (so ``pip install`` works in an image without ca-certificates)."""
    inside = f"{ADDED_PREFIX}/{prefix.name}"
    changes = {
        f"lib/{name}/_sysconfigdata_*.py": ("'/usr/share/python-wheels/'",
                                           f"'{inside}/share/python-wheels/'"),
        "lib/python3/dist-packages/pip/_vendor/certifi/core.py": (f"'{CA_BUNDLE}'",
                                                                 f"'{inside}{CA_BUNDLE}'"),
    }
    for pattern, (old, new) in changes.items():
        files = [f for f in prefix.glob(pattern) if old in f.read_text()]
        if not files:
            raise BuildError(f"making add_python's Python: no {pattern} with {old} in the "
                             "debian_slim base. This is a bug in coldsnap's add_python recipe.")
        for path in files:
            path.write_text(path.read_text().replace(old, new))


def _copy_libraries(root: Path, objects: list[Path], prefix: Path, patchelf: str) -> Path:
    """Copy every shared library ``objects`` need, found in the Debian ``root`` as its
    loader would, and the loader, into ``prefix/lib/<triplet>``; that directory."""
    triplet = _triplet(root)
    libdir = prefix / "lib" / triplet
    libdir.mkdir(parents=True)
    dirs = [d.format(triplet=triplet) for d in LIBRARY_DIRS]
    loader = _run([patchelf, "--print-interpreter", str(objects[0])]).strip()
    _copy_library(root, loader, libdir / PurePosixPath(loader).name)
    wanted = [*PRELOADED]
    for obj in objects:
        wanted += _run([patchelf, "--print-needed", str(obj)]).split()
    while wanted:
        soname = wanted.pop()
        target = libdir / soname
        if target.exists():
            continue
        # resolve_inside: the base's links are followed in the base, never on the host.
        source = next((f"/{d}/{soname}" for d in dirs if resolve_inside(root, f"/{d}/{soname}")),
                      None)
        if source is None:
            raise BuildError(f"making add_python's Python: {soname} is not in the debian_slim "
                             f"base {root} ({', '.join(dirs)}). This is a bug in coldsnap's "
                             "add_python recipe.")
        _copy_library(root, source, target)
        wanted += _run([patchelf, "--print-needed", str(target)]).split()
    return libdir


def _copy_library(root: Path, path: str, target: Path) -> None:
    real = resolve_inside(root, path)
    if real is None:
        raise BuildError(f"making add_python's Python: {path} dangles in {root}.")
    shutil.copy2(root / real.lstrip("/"), target)


def _triplet(root: Path) -> str:
    """The base's multiarch directory name ("x86_64-linux-gnu"): where its libc is."""
    for candidate in sorted((root / "usr/lib").glob("*-linux-gnu*")):
        if (candidate / "libc.so.6").exists():
            return candidate.name
    raise BuildError(f"the debian_slim base {root} has no usr/lib/*-linux-gnu/libc.so.6: "
                     "remove the base's directory so that it is built again.")


def _write_commands(prefix: Path, name: str) -> None:
    """python3, python and pip beside the interpreter, as in the python images."""
    bin_dir = prefix / "bin"
    for alias in ("python3", "python"):
        (bin_dir / alias).symlink_to(name)
    inside = f"{ADDED_PREFIX}/{prefix.name}/bin/{name}"
    for command in ("pip", "pip3", f"pip{name.removeprefix('python')}"):
        script = bin_dir / command
        script.write_text(f"#!{inside}\nimport sys\nfrom pip._internal.cli.main import main\n"
                          "sys.exit(main())\n")
        script.chmod(0o755)


def _probe(layer: Path, python: str) -> str:
    """Run the interpreter chrooted into the layer alone: it must need nothing else."""
    command = ["chroot", str(layer), python, "-I", "-c", PROBE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8"})
    if done.returncode != 0:
        raise BuildError(f"the Python made for add_python does not run on its own "
                         f"(`{' '.join(command)}`): {(done.stdout + done.stderr).strip()[-2000:]}"
                         " This is a bug in coldsnap's add_python recipe.")
    return done.stdout.strip()


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"making add_python's Python: `{' '.join(argv)}` failed: "
                         f"{done.stderr.strip()[-1000:]}")
    return done.stdout
