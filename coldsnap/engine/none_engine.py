"""The ``none`` engine: plain cold boots in plain processes, anywhere.

No namespaces, no snapshots. It lets the rest of the platform run (slower) on
hosts where CRIU can't, and is the baseline the benchmark compares against.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from coldsnap.engine.base import (
    Container,
    ContainerSpec,
    DumpFailed,
    EngineUnavailable,
    SnapshotInfo,
    SnapshotMiss,
)
from coldsnap.engine.pipes import ContainerPipes
from coldsnap.engine.store import SnapshotStore
from coldsnap.wire.container import CODE_DIR_ENV, WEB_HOST_ENV

BLOCK_NETWORK_IGNORED = (
    b"coldsnap: block_network=True has no effect on the none engine (its containers are "
    b"plain processes on the host's network): use the criu engine (COLDSNAP_ENGINE=criu) "
    b"to block the network\n")


class NoneEngine:
    name = "none"
    host_key = "none"
    isolated = False  # plain processes on the host's own filesystem
    # No snapshots, so no store: `coldsnap snapshots ...` says so and names the fix.
    store: SnapshotStore | None = None

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir

    def start(self, spec: ContainerSpec) -> Container:
        t0 = time.monotonic()
        if spec.volumes:  # a plain process has no mount namespace to bind them in
            raise EngineUnavailable(
                f"volumes ({', '.join(sorted(spec.volumes))}) need containers with mount "
                "namespaces: run the server with the criu engine (COLDSNAP_ENGINE=criu; "
                "`coldsnap doctor` says what it needs)")
        container_id = spec.container_id
        code_dir = Path(tempfile.mkdtemp(prefix=container_id + "-", dir=self.run_dir))
        for rel, data in spec.files.items():
            target = code_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        pipes = ContainerPipes.create()
        if spec.block_network:  # said in the container's log, where the user looks
            os.write(pipes.logs_w, BLOCK_NETWORK_IGNORED)
        # The host's network: web endpoints stay on loopback, where the gateway is.
        env = {**spec.env, **pipes.child_env(), CODE_DIR_ENV: str(code_dir),
               WEB_HOST_ENV: "127.0.0.1"}
        proc = subprocess.Popen(
            spec.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=pipes.logs_w,
            stderr=pipes.logs_w,
            pass_fds=pipes.child_fds(),
            start_new_session=True,
            cwd=spec.cwd or code_dir,
        )
        pipes.close_child_ends()
        container = Container(
            container_id,
            proc.pid,
            *pipes.server_streams(),
            timings={"sandbox_s": time.monotonic() - t0},
            process=proc,
        )
        container.cleanups.append(lambda: shutil.rmtree(code_dir, ignore_errors=True))
        return container

    def checkpoint(
        self, container: Container, key: str, labels: dict[str, str] | None = None,
        warnings: list[dict[str, str]] | None = None,
    ) -> SnapshotInfo:
        raise DumpFailed("the 'none' engine does not take snapshots")

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        raise SnapshotMiss(key)

    def lookup(self, key: str) -> SnapshotInfo | None:
        return None

    def mark_failed(self, key: str, reason: str) -> None:
        pass  # never asked: the server boots plainly with this engine (no keys to fail)

    def failure(self, key: str) -> str | None:
        return None

    def snapshots_deleted(self) -> None:
        pass

    def free_warm_memory(self) -> None:
        pass  # it keeps none

    def close(self) -> None:
        pass  # each container removes its own code dir
