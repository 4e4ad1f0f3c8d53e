"""What a restore's trouble means for its snapshot (the criu engine's verdicts).

- files changed since they were published (sizes before CRIU, digests beside it):
  quarantined, the key *not* marked failed — it was good when made, a new one may
  be made (SnapshotDamaged);
- a volume's file that the snapshot holds open changed size: quarantined, so the
  next cold boot makes a new one (SnapshotStale);
- CRIU rejected intact files, or their GPU state did not come back: quarantined
  and the key marked failed — a new dump would fail the same way.
A transient failure (a timeout, a killed CRIU) leaves the snapshot alone.
"""

from __future__ import annotations

from coldsnap.engine.base import (
    RestoreFailed,
    SnapshotDamaged,
    SnapshotInfo,
    SnapshotMiss,
    SnapshotStale,
)
from coldsnap.engine.digests import Damage, Verification
from coldsnap.engine.layers import LayerCache
from coldsnap.engine.store import SnapshotStore
from coldsnap.engine.volume_mounts import stale_volume_file


class SnapshotFate:
    """Decides and carries out what happens to a snapshot whose restore went wrong."""

    def __init__(self, store: SnapshotStore, layers: LayerCache) -> None:
        self.store, self.layers = store, layers

    def usable(self, key: str) -> SnapshotInfo:
        """``key``'s snapshot if its files have the sizes published; SnapshotMiss when
        there is none, SnapshotDamaged (quarantined) when they don't. No look at the
        failure record: the server's policy read it before it asked."""
        info = self.store.get(key)
        if info is None:
            raise SnapshotMiss(f"no snapshot {key} for host {self.store.host_key}")
        damage = self.store.check_sizes(info)  # the digests are checked beside CRIU
        if damage is not None:
            raise self.damaged(info, damage)
        return info

    def after_failure(self, info: SnapshotInfo, exc: RestoreFailed,
                      check: Verification) -> Exception:
        """What to raise for a failed restore of ``info`` (``check``: its digests)."""
        if exc.transient:
            check.cancel()
            return exc
        damage = check.result()  # CRIU rejected the images: were they changed?
        if damage is not None:
            return self.damaged(info, damage)
        path = stale_volume_file(info, exc)
        if path is not None:
            self.layers.forget(info.path / "fs")
            return SnapshotStale(info.key, path, self.store.quarantine(info.key, exc.reason))
        self.quarantine(info, str(exc))
        return exc

    def quarantine(self, info: SnapshotInfo, reason: str) -> None:
        """CRIU rejected intact files: the key is marked failed (a new dump would fail too)."""
        self.layers.forget(info.path / "fs")
        self.store.mark_failed(info.key, reason)
        self.store.quarantine(info.key, reason)

    def damaged(self, info: SnapshotInfo, damage: Damage) -> SnapshotDamaged:
        """Quarantine a snapshot whose files changed since it was published."""
        self.layers.forget(info.path / "fs")
        where = self.store.quarantine(info.key, str(damage))
        return SnapshotDamaged(info.key, damage.file, damage.problem, where)
