"""The ``criu`` engine: namespaced containers, CRIU dumps, concurrent restores.

A fresh container is pid 1 of new pid and mount namespaces on an overlay root
(see nsinit.py), in a pre-made network namespace: a veth and NAT out, or loopback
alone for ``block_network`` (netns.py), in the snapshot phase as after it. A
checkpoint dumps the tree with the network namespace marked external (established
TCP connections are closed, listening sockets kept: criu.dump) and saves the
container's upper dir as the snapshot's filesystem layer. A
restore mounts a new overlay (snapshot layer over the image layers over the host
root), plugs new pipes and a pre-made network namespace in with
``--inherit-fd``, and lets CRIU rebuild the tree, while a thread checks the
image files against the digests taken at publish (digests.py); a copy from
changed files is killed before it is resumed.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

from coldsnap.engine import criu
from coldsnap.engine.base import (
    Container,
    ContainerSpec,
    DumpFailed,
    EngineUnavailable,
    RestoreFailed,
    SnapshotInfo,
)
from coldsnap.engine.checkpoint import checkpoint_container
from coldsnap.engine.digests import Verification
from coldsnap.engine.disks import DiskPool
from coldsnap.engine.doctor import run_checks
from coldsnap.engine.gpu import CudaCheckpoint, GpuCheckpointError, host_pids_for
from coldsnap.engine.host_driver import LibrariesLayer, MountsLayer
from coldsnap.engine.hostkey import host_facts, host_key
from coldsnap.engine.layers import LayerCache
from coldsnap.engine.leftovers import claim_run_dir
from coldsnap.engine.limits import ContainerLimits
from coldsnap.engine.masks import ContainerMasks
from coldsnap.engine.netns import NETNS_OWNERS, Netns, NetnsError, NetnsPool
from coldsnap.engine.pipes import ContainerPipes
from coldsnap.engine.rcu import apply_rcu_mode
from coldsnap.engine.sandbox import (
    ContainerDirs,
    clear_volume_views,
    ensure_tmpfs,
    gpu_device_nodes,
    refresh_kdat_cache,
    start_fresh,
)
from coldsnap.engine.snapshot_fate import SnapshotFate
from coldsnap.engine.store import SnapshotStore
from coldsnap.engine.thp import set_thp_mode
from coldsnap.engine.userns import IdRange, user_namespace
from coldsnap.engine.volume_mounts import volume_sources
from coldsnap.engine.warm_memory import BLOCK_MB, WarmMemory, hands_memory_back, reserve_mb
from coldsnap.settings import Settings
from coldsnap.wire.container import CODE_DIR

PR_SET_CHILD_SUBREAPER = 36
logger = logging.getLogger(__name__)


def _lowers(spec: ContainerSpec) -> list[Path]:
    """The lower layers of ``spec``'s root, highest first: its layers, then its base."""
    return [*spec.layers, *([spec.base] if spec.base is not None else [])]


@dataclasses.dataclass
class _Resources:
    """What one container holds: its dirs, the layers it mounts, its netns (and the
    pool it came from)."""

    dirs: ContainerDirs
    layers: list[Path] = dataclasses.field(default_factory=list)
    netns: Netns | None = None
    netns_pool: NetnsPool | None = None

    def take_netns(self, pool: NetnsPool) -> Netns:
        self.netns, self.netns_pool = pool.acquire(), pool
        return self.netns


class CriuEngine:
    name = "criu"
    isolated = True

    def __init__(self, settings: Settings, facts: dict[str, object] | None = None) -> None:
        problems = [c for c in run_checks(settings) if c.needed and not c.ok]
        if problems:
            raise EngineUnavailable(
                "the criu engine can't run here: "
                + "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in problems)
                + ". Set COLDSNAP_ENGINE=none for plain cold boots without snapshots."
            )
        self.settings = settings
        self.userns = user_namespace(settings)
        self.facts = facts or host_facts(settings.criu_path)
        if self.userns is not None:  # its snapshots restore only with the same ids
            self.facts = {**self.facts, "userns": self.userns.ids.map_line().strip()}
        if settings.host_key_salt:  # an operator keeps these hosts' snapshots apart
            self.facts = {**self.facts, "salt": settings.host_key_salt}
        self.host_key = host_key(self.facts)
        self.store = SnapshotStore(settings.snapshots, self.host_key)
        self._mounted_run_dir = ensure_tmpfs(settings.run_path)
        self._claim = claim_run_dir(settings)
        # A run dir tmpfs a killed server mounted is ours to unmount now, if we own it.
        self._mounted_run_dir = self._mounted_run_dir and self._claim.owns_run_dir
        refresh_kdat_cache(settings.criu_path)
        if settings.host_thp != "keep":
            set_thp_mode(settings.host_thp)
        apply_rcu_mode(settings.host_rcu)
        self.layers = LayerCache(settings.run_path, settings.state_dir / "layers", self.userns)
        self.layers.prune()
        self.fate = SnapshotFate(self.store, self.layers)  # of snapshots whose restore fails
        self.netns = NetnsPool(NETNS_OWNERS, settings.prewarm_netns)
        # For new containers' memory, and fetched snapshots' (remote_store).
        self.warm = WarmMemory(reserve_mb(settings.warm_memory_mb))
        if self.warm.target:
            kept = f"keeping {self.warm.target * BLOCK_MB} MB of memory warm for restores"
        else:
            kept = "keeping no memory warm for restores"
            if not hands_memory_back():
                kept += ": free memory stays with this host"
        logger.info("%s (COLDSNAP_WARM_MEMORY_MB=%s; docs/warm-memory.md)", kept,
                    settings.warm_memory_mb)
        # block_network=True is rare: its pool is made at its first use (_netns_pool).
        self._loopback_netns: NetnsPool | None = None
        self._loopback_lock = threading.Lock()
        # Restored trees are reparented to us when `criu restore` exits: reap them.
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
        # What containers don't see of the host; registers this server's dirs (masks.py).
        # The host-wide caches of base and registry images too: containers see them as
        # packed layers, never there.
        self.masks = ContainerMasks(settings.state_dir, settings.images,
                                    [settings.snapshots, settings.run_path], settings.run_path,
                                    shared_dirs=[settings.base_dir, settings.registry_cache])
        # The GPU driver's files where a root lacks them (host_driver.py).
        self.driver_mounts = MountsLayer(settings.state_dir)
        self.driver_libraries = LibrariesLayer(settings.state_dir)
        self._gpu_host = bool(gpu_device_nodes())  # once: not on every start and restore
        self._dirs: dict[str, ContainerDirs] = {}
        self.disks = DiskPool(settings.disks_path, settings.run_path)
        if self._claim.owns_run_dir:
            self.disks.clear()
            clear_volume_views(settings.run_path)  # a killed server's restores left them
        self.limits = ContainerLimits(settings, self.disks)

    def _ids(self, spec: ContainerSpec) -> IdRange | None:
        """The user namespace's ids for a root of the image's own; None: no user
        namespace (``from_host()``, whose Python may sit where a mapped root can't go)."""
        return self.userns.ids if self.userns is not None and spec.base is not None else None

    def _netns_pool(self, spec: ContainerSpec) -> NetnsPool:
        """Where ``spec``'s network namespace comes from: loopback alone, or the way out."""
        if not spec.block_network:
            return self.netns
        with self._loopback_lock:
            if self._loopback_netns is None:  # one kept ready from then on
                self._loopback_netns = NetnsPool(
                    NETNS_OWNERS, min(self.settings.prewarm_netns, 1), outbound=False)
            return self._loopback_netns

    def _masks(self, spec: ContainerSpec) -> list[Path]:
        """The mask layer over the host's root; none over an image's own root."""
        return [self.masks.layer()] if spec.base is None else []

    def _lowers(self, spec: ContainerSpec) -> list[Path]:
        """``_lowers``, with the GPU driver's files where the root lacks them
        (host_driver.py; packed layers like the others: a directory of the host's "/"
        can't be a layer over it): over the host's root, what the host mounts apart;
        over an image's own root on a host with GPUs, the driver's libraries, on top."""
        if spec.base is None:
            mounts = self.driver_mounts.layer()
            return [*_lowers(spec), *([mounts] if mounts is not None else [])]
        libraries = self.driver_libraries.layer() if self._gpu_host else None
        return [*([libraries] if libraries is not None else []), *_lowers(spec)]

    # -- fresh containers ------------------------------------------------------

    def start(self, spec: ContainerSpec) -> Container:
        t0 = time.monotonic()
        self.warm.release()
        res = _Resources(self.limits.dirs(spec))
        pipes = ContainerPipes.create()
        groups = self.limits.cgroups(spec)
        ids = self._ids(spec)
        binds = () if spec.snapshot_phase else spec.binds
        try:
            joins = groups.create(spec.container_id) if groups.enabled else []
            res.dirs.seed_upper()
            if not spec.snapshot_phase or spec.gpu_snapshot:
                res.dirs.add_devices(gpu_device_nodes())
            res.dirs.write_files(spec.files)
            if spec.base is not None:
                res.dirs.add_resolver()
            res.layers = [self.layers.acquire(p, idmapped=ids is not None)
                          for p in self._lowers(spec)]
            res.dirs.volumes = sorted(spec.volumes)  # checkpoint marks them external
            if ids is not None:  # the host mounts the root: see nsinit.enter_user_namespace
                res.dirs.give_to_namespace(ids)
                res.dirs.mount_root(res.layers, host_root=False)
                res.dirs.bind(binds)
                res.dirs.mount_volumes(spec.volumes, self._idmap)
            netns = res.take_netns(self._netns_pool(spec))
            proc, pid = start_fresh(
                res.dirs, spec.argv, {**spec.env, **pipes.child_env()},
                [*res.layers, *self._masks(spec)],
                netns.path, pipes.child_fds(), pipes.logs_w,
                cwd=spec.cwd or CODE_DIR, host_root=spec.base is None, binds=binds, ids=ids,
                cgroups=tuple(joins), volumes=spec.volumes, fixed_layout=spec.fixed_layout,
            )  # fmt: skip
        except BaseException:
            pipes.close_all()
            groups.discard(spec.container_id)
            self._release(res)
            raise
        pipes.close_child_ends()
        container = Container(
            res.dirs.base.name, pid, *pipes.server_streams(),
            timings={"sandbox_s": time.monotonic() - t0}, process=proc,
        )  # fmt: skip
        self._track(container, res, keep_upper=spec.keep_upper)
        self.limits.apply(container, spec, self._dirs[container.id].upper, groups)
        return container

    # -- checkpoint ------------------------------------------------------------

    def checkpoint(
        self, container: Container, key: str, labels: dict[str, str] | None = None,
        warnings: list[dict[str, str]] | None = None,
    ) -> SnapshotInfo:
        dirs = self._dirs.get(container.id)
        if dirs is None:
            raise DumpFailed(f"container {container.id} was not started by this engine")
        try:
            return checkpoint_container(self.store, self.settings, self.facts, container,
                                        dirs, key, labels or {}, warnings or [])
        finally:
            self.layers.prune()  # layers of snapshots deleted since go now

    # -- restore ---------------------------------------------------------------

    def lookup(self, key: str) -> SnapshotInfo | None:
        return self.store.get(key)

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        """Restore ``key`` while a thread checks its image files' digests; the copy is
        returned (and so resumed) only once they match. ``verify_s`` in its timings:
        what the check added after CRIU was done."""
        info = self.fate.usable(key)
        self.warm.release()
        check = Verification(info.path / "images", info.extra.get("digests", {}),
                             self.store.verified)
        groups = self.limits.cgroups(spec)
        try:
            joins = groups.create(spec.container_id) if groups.enabled else []
            container = self._restore_tree(info, spec, tuple(joins))
        except RestoreFailed as exc:
            groups.discard(spec.container_id)
            verdict = self.fate.after_failure(info, exc, check)
            if verdict is exc:
                raise
            raise verdict from exc
        except BaseException:
            groups.discard(spec.container_id)
            check.cancel()
            raise
        t0 = time.monotonic()
        damage = check.result()
        container.timings["verify_s"] = time.monotonic() - t0
        container.timings["verify_hash_s"] = check.hash_s
        if damage is not None:
            container.kill()  # never resumed: it holds the wrong memory
            raise self.fate.damaged(info, damage)
        if info.extra.get("gpu_processes"):
            self._resume_gpu(container, info)
        self.limits.apply(container, spec, self._dirs[container.id].upper, groups)
        return container

    def _restore_tree(self, info: SnapshotInfo, spec: ContainerSpec,
                      cgroups: tuple[Path, ...] = ()) -> Container:
        """CRIU's part of a restore: a new root, pipes and netns, then the tree."""
        t0 = time.monotonic()
        try:
            res = _Resources(self.limits.dirs(spec))
        except OSError as exc:
            raise RestoreFailed(f"restore setup failed: {exc}", transient=True) from exc
        pipes = ContainerPipes.create()
        netns_fd = -1
        ids = self._ids(spec)
        try:
            mapped = ids is not None
            res.layers = [self.layers.acquire(info.path / "fs", idmapped=mapped)]
            res.layers += [self.layers.acquire(p, idmapped=mapped) for p in self._lowers(spec)]
            res.dirs.add_devices(gpu_device_nodes())
            if ids is not None:
                res.dirs.give_to_namespace(ids)
            res.dirs.mount_root([*res.layers, *self._masks(spec)], host_root=spec.base is None)
            netns = res.take_netns(self._netns_pool(spec))
            netns_fd = os.open(netns.path, os.O_RDONLY)
            saved = info.extra["pipes"]
            inherit = {
                f"pipe:[{saved['ctrl_in']}]": pipes.ctrl_in_r,
                f"pipe:[{saved['ctrl_out']}]": pipes.ctrl_out_w,
                f"pipe:[{saved['logs']}]": pipes.logs_w,
            }
            if ids is None:  # else CRIU runs in the netns (criu.dump says why)
                inherit["extnet"] = netns_fd
            volumes = volume_sources(info, spec, res.dirs,
                                     self._idmap if ids is not None else None)
            sysfs = res.dirs.sysfs_view(netns.path) if ids is not None else None
            t1 = time.monotonic()
            pid, restore_s = criu.restore(
                self.settings.criu_path, info.path / "images", res.dirs.root, res.dirs.base,
                inherit, self.settings.restore_timeout_s, cgroups,
                netns=netns.path if ids is not None else None, volumes=volumes, sysfs=sysfs,
            )  # fmt: skip
        except BaseException as exc:
            pipes.close_all()
            self._release(res)
            if isinstance(exc, (OSError, subprocess.CalledProcessError, NetnsError)):
                raise RestoreFailed(f"restore setup failed: {exc}", transient=True) from exc
            raise
        finally:
            if netns_fd >= 0:
                os.close(netns_fd)
        pipes.close_child_ends()
        container = Container(
            res.dirs.base.name, pid, *pipes.server_streams(),
            timings={"sandbox_s": t1 - t0, "restore_s": restore_s},
        )  # fmt: skip
        self._track(container, res)
        return container

    def _idmap(self, source: Path, target: Path) -> None:
        assert self.userns is not None
        self.userns.idmap(source, target)

    def _resume_gpu(self, container: Container, info: SnapshotInfo) -> None:
        try:
            t0 = time.monotonic()
            CudaCheckpoint().resume(host_pids_for(container.pid, info.extra["gpu_processes"]))
            container.timings["gpu_restore_s"] = time.monotonic() - t0
        except GpuCheckpointError as exc:
            container.kill()
            self.fate.quarantine(info, str(exc))
            raise RestoreFailed(f"GPU state could not be restored: {exc}") from exc

    # -- bookkeeping -------------------------------------------------------------

    def snapshots_deleted(self) -> None:
        """Snapshots went (rm, gc): unmount and delete their filesystem layers once
        no container uses them."""
        self.layers.prune()

    def free_warm_memory(self) -> None:
        self.warm.release()

    def mark_failed(self, key: str, reason: str) -> None:
        self.store.mark_failed(key, reason)

    def failure(self, key: str) -> str | None:
        return self.store.failure(key)

    def _track(
        self, container: Container, res: _Resources, keep_upper: Path | None = None
    ) -> None:
        self._dirs[container.id] = res.dirs
        if res.netns is not None:  # the host reaches its web endpoints there
            container.address = res.netns.container_ip

        def cleanup() -> None:
            self._dirs.pop(container.id, None)
            if keep_upper is not None:
                res.dirs.save_upper(keep_upper)
            self._release(res)

        container.cleanups.append(cleanup)

    def _release(self, res: _Resources) -> None:
        """Give back what one container held; safe with a half-built one."""
        res.dirs.remove()
        self.disks.delete(res.dirs.base.name)
        for layer in res.layers:
            self.layers.release(layer)
        if res.netns is not None and res.netns_pool is not None:
            res.netns_pool.release(res.netns)
        self.warm.refill()  # from the memory it just freed

    def close(self) -> None:
        """Give back the network namespaces and layer mounts (and the run dir's tmpfs if
        we mounted it)."""
        self.warm.close()
        self.netns.close()
        with self._loopback_lock:
            if self._loopback_netns is not None:
                self._loopback_netns.close()
        self.layers.close()
        if self.userns is not None:
            self.userns.close()
        self.disks.close()
        if self._claim.owns_run_dir:
            clear_volume_views(self.settings.run_path)  # its dir, empty by now
        self._claim.release()
        if self._mounted_run_dir:
            subprocess.run(["umount", "-l", str(self.settings.run_path)], check=False)
            with contextlib.suppress(OSError):
                self.settings.run_path.rmdir()  # ours, empty once unmounted

    def __repr__(self) -> str:
        return f"CriuEngine(host_key={self.host_key}, store={self.store.root})"

