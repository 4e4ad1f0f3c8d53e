"""A snapshot's filesystem layer as one file, and back: GNU tar.

The layer is an overlay upper dir: owners (shifted to the container's ids under a
user namespace), modes, symlinks, whiteouts (0/0 character devices) and the
overlay's xattrs (``trusted.overlay.opaque``) all matter, which tar keeps with
``--numeric-owner --xattrs``. Names are sorted so that an unchanged layer packs
to the same bytes, and so to the same chunks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_XATTRS = ["--xattrs", "--xattrs-include=*"]
# --xattrs writes pax headers, which carry each file's atime and ctime: reading a file
# (tar itself does) would change its tar, and so its chunks. Only mtime is kept.
_SAME_BYTES = ["--pax-option=delete=atime,delete=ctime"]


def pack(fs_dir: Path, tar_path: Path) -> None:
    """Write the tree under ``fs_dir`` to ``tar_path``; OSError saying why if tar fails."""
    _tar(["--create", f"--file={tar_path}", f"--directory={fs_dir}", "--sort=name",
          "--numeric-owner", "--sparse", *_XATTRS, *_SAME_BYTES, "."])


def unpack(tar_path: Path, fs_dir: Path) -> None:
    """Recreate the tree of ``tar_path`` under ``fs_dir`` (made if absent)."""
    fs_dir.mkdir(parents=True, exist_ok=True)
    _tar(["--extract", f"--file={tar_path}", f"--directory={fs_dir}", "--numeric-owner",
          "--same-permissions", "--same-owner", *_XATTRS])


def _tar(args: list[str]) -> None:
    done = subprocess.run(["tar", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"tar {args[0]} failed: {done.stderr.strip()[-500:]}")
