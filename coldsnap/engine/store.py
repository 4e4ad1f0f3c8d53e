"""The snapshot store: one directory per (host key, snapshot key), published atomically.

Layout under the root::

    <host_key>/<key>/meta.json     what, when, how big, which CRIU, file sizes and digests
    <host_key>/<key>/images/       CRIU's image files
    <host_key>/<key>/fs/           what the snapshot phase wrote to its filesystem
    <host_key>/failed/<key>.json   why a key failed; it is not retried
    .staging/                      dumps in progress (never visible as snapshots)
    quarantine/                    snapshots that failed verification or restore

A dump is written under ``.staging`` and renamed into place, so a half-written
snapshot is never visible, and of two concurrent dumps of one key the first
rename wins and the other is dropped.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from coldsnap.engine.base import SnapshotInfo
from coldsnap.engine.digests import (
    Damage,
    VerifiedFiles,
    check_digests,
    check_sizes,
    digest_files,
    file_stamp,
)

META = "meta.json"
# A key names a directory of the store: no path separators, no dot names.
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
RESERVED_KEYS = frozenset({"failed"})
# The metadata a SnapshotInfo carries in ``extra``.
EXTRA = ("files", "digests", "labels", "pipes", "gpu_processes", "volumes", "warnings", "host")


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a key failed (``reason``) and when (``at``, a Unix time)."""

    reason: str
    at: float


def is_key(key: object) -> bool:
    return isinstance(key, str) and KEY_RE.fullmatch(key) is not None and key not in RESERVED_KEYS


def check_key(key: str) -> str:
    """``key`` if it can name a snapshot, else ValueError saying what keys look like."""
    if not is_key(key):
        raise ValueError(
            f"{key!r} is not a snapshot key: keys are letters, digits, '.', '_' and '-' "
            "(like 3f2a…-Embedder); `coldsnap snapshots ls` lists them"
        )
    return key


class SnapshotStore:
    def __init__(self, root: Path, host_key: str) -> None:
        self.root = root
        self.host_key = host_key
        self.host_dir = root / host_key
        # Image files whose bytes matched their digests, by stamp: a restore hashes a
        # file again only if it may have changed since (digests.py).
        self.verified = VerifiedFiles()
        self._ensure_layout()

    def _ensure_layout(self) -> None:
        # Also called before writes: someone may delete the store under a running server.
        for sub in (self.host_dir / "failed", self.root / ".staging", self.root / "quarantine"):
            sub.mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------------

    def staging_dir(self, key: str) -> Path:
        check_key(key)
        self._ensure_layout()
        path = self.root / ".staging" / f"{key}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def publish(self, staging: Path, key: str, meta: dict[str, Any],
                digests: dict[str, str] | None = None) -> SnapshotInfo:
        """Seal ``staging`` with its metadata and rename it into place. ``digests``: the
        image files' digests when the caller checked their bytes another way (a fetch
        checks every chunk's hash); else they are taken here."""
        meta = {
            **meta,
            "key": key,
            "host_key": self.host_key,
            "created_at": time.time(),
            "files": _file_sizes(staging / "images"),
            # Every byte of every image file: what `verify` and each restore check.
            "digests": digests if digests else digest_files(staging / "images"),
        }
        stamps = {p.name: file_stamp(p) for p in (staging / "images").iterdir()}
        meta["size_bytes"] = sum(meta["files"].values()) + tree_size(staging / "fs")
        _write_json(staging / META, meta)
        final = self.host_dir / check_key(key)
        self._ensure_layout()
        try:
            os.rename(staging, final)
        except OSError:
            # Another dump of this key won the race (the target exists): keep theirs.
            shutil.rmtree(staging, ignore_errors=True)
        info = self.get(key)
        if info is None:
            raise FileNotFoundError(f"snapshot {key} vanished right after it was published")
        for name, stamp in stamps.items():  # just hashed: the first restore needn't again
            path = final / "images" / name
            if path.exists() and file_stamp(path) == stamp:
                self.verified.remember(path, stamp)
        return info

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    # -- reading ---------------------------------------------------------------

    def get(self, key: str) -> SnapshotInfo | None:
        """The snapshot for ``key`` on this host if its metadata reads, else None."""
        if not is_key(key):
            return None
        path = self.host_dir / key
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        return _info(path, meta)

    def check_sizes(self, info: SnapshotInfo) -> Damage | None:
        """The first image file missing or of another size than published, or None.

        Cheap (stats only); a restore runs it first and the digests beside CRIU.
        """
        return check_sizes(info.path / "images", info.extra.get("files", {}))

    def verify(self, info: SnapshotInfo) -> Damage | None:
        """The first image file whose size or bytes differ from what was published, or
        None when all match. A snapshot published without digests (before they were
        recorded) is checked by size only."""
        return self.check_sizes(info) or check_digests(
            info.path / "images", info.extra.get("digests", {}))

    def list(self) -> builtins.list[SnapshotInfo]:
        self._ensure_layout()  # the store may have been deleted under us
        infos = []
        for host in sorted(p for p in self.root.iterdir() if not p.name.startswith(".")):
            if host.name == "quarantine" or not host.is_dir():
                continue
            for path in sorted(host.iterdir()):
                if path.name == "failed":
                    continue
                try:
                    infos.append(_info(path, json.loads((path / META).read_text())))
                except (OSError, ValueError):
                    continue
        return sorted(infos, key=lambda info: info.created_at)

    def inspect(self, key: str) -> dict[str, Any] | None:
        info = self.get(key)
        if info is None:
            return None
        meta = json.loads((info.path / META).read_text())
        meta["path"] = str(info.path)
        meta["last_error"] = self.failure(key)
        return meta

    # -- failures, quarantine, deletion ---------------------------------------

    def mark_failed(self, key: str, reason: str) -> None:
        """Record why ``key`` failed; it stays failed until ``delete(key)``."""
        self._ensure_layout()
        record = {"reason": reason, "at": time.time()}
        _write_json(self.host_dir / "failed" / f"{check_key(key)}.json", record)

    def failure(self, key: str) -> str | None:
        """Why ``key`` failed on this host, or None."""
        record = self._failure_record(key) if is_key(key) else None
        return record.reason if record else None

    def failures(self) -> dict[str, Failure]:
        """Every failed key of this host, with why and when."""
        out = {}
        for path in (self.host_dir / "failed").glob("*.json"):
            record = self._failure_record(path.stem) if is_key(path.stem) else None
            if record is not None:
                out[path.stem] = record
        return out

    def _failure_record(self, key: str) -> Failure | None:
        try:
            data = json.loads((self.host_dir / "failed" / f"{key}.json").read_text())
            return Failure(str(data["reason"]), float(data.get("at", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def quarantine(self, key: str, reason: str) -> Path | None:
        """Move a bad snapshot aside (kept for a post-mortem) and remember why."""
        self._ensure_layout()
        src = self.host_dir / check_key(key)
        self.verified.forget(src)
        dest = self.root / "quarantine" / f"{key}-{int(time.time())}-{uuid.uuid4().hex[:4]}"
        try:
            os.rename(src, dest)
        except OSError:
            return None
        (dest / "quarantine-reason.txt").write_text(reason + "\n")
        return dest

    def delete(self, key: str) -> bool:
        """Remove the snapshot and any failure record of ``key``; False if neither existed.

        Deleting a failed key is how a user asks for another try.
        """
        failed = self.host_dir / "failed" / f"{check_key(key)}.json"
        had_failure = failed.exists()
        failed.unlink(missing_ok=True)
        path = self.host_dir / key
        self.verified.forget(path)
        if not path.exists():
            return had_failure
        trash = self.root / ".staging" / f"rm-{key}-{uuid.uuid4().hex[:8]}"
        self._ensure_layout()
        os.rename(path, trash)  # disappear atomically, then free the space
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def gc(self, keep: int) -> builtins.list[str]:
        """Delete all but the newest ``keep`` snapshots of each (app, function)."""
        groups: dict[tuple[str, str], list[SnapshotInfo]] = {}
        for info in self.list():
            labels = info.extra.get("labels", {})
            group = (labels.get("app", ""), labels.get("function", info.key))
            groups.setdefault(group, []).append(info)
        removed: builtins.list[str] = []
        for infos in groups.values():
            for info in sorted(infos, key=lambda i: i.created_at)[:-keep or None]:
                if info.path.parent.name == self.host_key and self.delete(info.key):
                    removed.append(info.key)
        return removed

    def clear_quarantine(self) -> tuple[int, int]:
        """Delete the quarantined snapshots (kept for a post-mortem until now); returns
        how many there were and the bytes they held."""
        quarantine = self.root / "quarantine"
        entries = [p for p in quarantine.iterdir()] if quarantine.is_dir() else []
        size = sum(tree_size(p) for p in entries)
        shutil.rmtree(quarantine, ignore_errors=True)
        quarantine.mkdir(exist_ok=True)
        return len(entries), size

    def disk_usage(self) -> int:
        return tree_size(self.root)


def _info(path: Path, meta: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        key=meta["key"],
        host_key=meta["host_key"],
        path=path,
        size_bytes=int(meta.get("size_bytes", 0)),
        dump_s=float(meta.get("dump_s", 0.0)),
        created_at=float(meta.get("created_at", 0.0)),
        criu_version=str(meta.get("criu_version", "")),
        extra={k: meta[k] for k in EXTRA if k in meta},
    )


def _file_sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file()}


def tree_size(directory: Path) -> int:
    """The sizes of the files under ``directory``, added up (0 where it is gone)."""
    total = 0
    for dirpath, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.rename(tmp, path)
