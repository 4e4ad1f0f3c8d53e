"""Checks that tell whether this host can take and restore snapshots.

``coldsnap doctor`` prints them; ``make_engine`` uses ``criu_usable`` to pick
the ``criu`` engine under ``engine=auto``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from coldsnap.settings import Settings

CAP_CHECKPOINT_RESTORE = 40
CAP_SYS_ADMIN = 21
INSTALL = "run scripts/install-criu.sh as root (the README's set-up does it)"


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed: bool = True  # False: informational (a GPU, lazy restore)
    setting: bool = False  # a COLDSNAP_* value the server refuses to start with


def criu_usable(settings: Settings) -> bool:
    """True when the CRIU binary exists, we are privileged, and `criu check` passes."""
    if not _privileged() or not settings.criu_path.exists():
        return False
    return _criu(settings.criu_path, "check")[0] == 0


def run_checks(settings: Settings) -> list[Check]:
    criu = settings.criu_path
    checks = [_check_privileges(), Check("kernel", True, platform.release())]
    if criu.exists():
        version = _criu(criu, "--version")[1].splitlines()[0:1] or ["unknown"]
        checks.append(Check("criu", True, f"{criu} ({version[0].strip()})"))
        code, out = _criu(criu, "check")
        verdict = (out.strip().splitlines() or ["no output"])[-1]
        checks.append(Check("criu check", code == 0, verdict, "" if code == 0 else INSTALL))
        code, out = _criu(criu, "check", "--feature", "uffd-noncoop")
        checks.append(Check(
            "userfaultfd (lazy restore)", code == 0, out.strip() or "not supported",
            "" if code == 0 else "a kernel with CONFIG_USERFAULTFD enables lazy restores",
            needed=False,
        ))  # fmt: skip
    else:
        checks.append(Check("criu", False, f"not found at {criu}", INSTALL))
    for tool, package in (("iptables", "iptables"), ("ip", "iproute2"),
                          ("unshare", "util-linux"), ("nsenter", "util-linux"),
                          ("mkfs.ext4", "e2fsprogs"), ("losetup", "mount"),
                          ("tini-static", "tini")):
        path = shutil.which(tool)
        checks.append(Check(tool, path is not None, path or "not found",
                            "" if path else f"apt-get install {package}"))
    loop = Path("/dev/loop-control").exists()  # image layers are loop-mounted ext4 images
    checks.append(Check("loop devices", loop, "available" if loop else "no /dev/loop-control",
                        "" if loop else "load the loop module: modprobe loop"))
    overlay = "overlay" in Path("/proc/filesystems").read_text()
    checks.append(Check("overlayfs", overlay, "available" if overlay else "missing",
                        "" if overlay else "load the overlay module: modprobe overlay"))
    from coldsnap.engine.thp import thp_mode

    mode = thp_mode()
    checks.append(Check(
        "transparent huge pages", True, mode,
        "" if mode == "always" else "the criu engine sets always unless COLDSNAP_HOST_THP=keep",
        needed=False,
    ))  # fmt: skip
    from coldsnap.engine.rcu import rcu_mode

    rcu = rcu_mode()
    checks.append(Check(
        "RCU grace periods", True, rcu,
        "" if rcu != "normal" else "the criu engine sets expedited unless COLDSNAP_HOST_RCU=keep "
        "(each restore's cgroup join waits ~8 ms less)",
        needed=False,
    ))  # fmt: skip
    checks.append(_check_warm_memory(settings))
    checks.append(_check_user_namespaces(settings))
    checks.append(_check_gpu())
    checks.append(_check_leftovers(settings))
    return checks


def _check_warm_memory(settings: Settings) -> Check:
    """Whether this host hands free memory back (restores land in slow, fresh memory
    there) and how much the criu engine keeps warm for them. Informational."""
    from coldsnap.engine.warm_memory import hands_memory_back, reserve_mb

    back = hands_memory_back()
    where = ("this VM hands free memory back to its hypervisor" if back
             else "free memory stays with this host")
    try:
        held = reserve_mb(settings.warm_memory_mb)
    except ValueError as exc:  # the server refuses to start with it
        return Check("warm memory", False, str(exc), "see docs/warm-memory.md", setting=True)
    return Check(
        "warm memory", True, f"{where}: {held} MB kept warm for restores "
        f"(COLDSNAP_WARM_MEMORY_MB={settings.warm_memory_mb})",
        "" if held or not back else "restores here start in handed-back memory: "
        "COLDSNAP_WARM_MEMORY_MB=auto keeps some warm (docs/warm-memory.md)",
        needed=False,
    )  # fmt: skip


def _check_leftovers(settings: Settings) -> Check:
    """What a killed server left on this state dir's run dir and store. Informational:
    the next server removes it at start-up, and snapshots work meanwhile."""
    from coldsnap.engine.leftovers import find_leftovers

    found = find_leftovers(settings.run_path, settings.snapshots, settings.criu_path.parent.parent)
    busy = "; ".join(found.busy)
    if not found:
        return Check("leftovers", True, f"none ({busy})" if busy else "none", needed=False)
    return Check(
        "leftovers", False,
        f"a killed server left in {settings.run_path} and {settings.snapshots}: "
        f"{found.summary()}" + (f" ({busy})" if busy else ""),
        "start the server on this state dir (`coldsnap serve`): it removes them at start-up",
        needed=False,
    )  # fmt: skip


def _check_user_namespaces(settings: Settings) -> Check:
    """Containers on an image's own root run in a user namespace (engine/userns.py):
    the kernel must make one and idmapped mounts, and CRIU must dump them."""
    from coldsnap.engine.userns import probe

    needed = settings.user_namespaces == "on"
    off = "COLDSNAP_USER_NAMESPACES=off runs containers as the host's root"
    if not needed:
        return Check("user namespaces", True, f"off ({off.split(' runs')[0]})", needed=False)
    with tempfile.TemporaryDirectory(prefix="coldsnap-userns-") as scratch:
        problem = probe(Path(scratch))
    if not problem and settings.criu_path.exists():
        code, out = _criu(settings.criu_path, "check", "--feature", "userns")
        problem = "" if code == 0 else f"criu check --feature userns: {out.strip()}"
    if problem:
        return Check("user namespaces", False, problem,
                     f"a kernel of 5.19 or later with user namespaces on, or {off}",
                     needed=needed)
    return Check("user namespaces", True,
                 "images' own roots run as an unprivileged uid range; from_host() as root",
                 needed=needed)


def _check_privileges() -> Check:
    if os.geteuid() == 0:
        return Check("privileges", True, "root")
    if _privileged():
        return Check("privileges", True, "CAP_CHECKPOINT_RESTORE and CAP_SYS_ADMIN")
    return Check("privileges", False, f"uid {os.geteuid()} without CAP_CHECKPOINT_RESTORE",
                 "run the server as root (namespaces, mounts and CRIU need it)")


def _check_gpu() -> Check:
    version_file = Path("/proc/driver/nvidia/version")
    if not version_file.exists():
        return Check("gpu", True, "none (CPU only; GPU functions run on the CPU)", needed=False)
    driver = version_file.read_text().splitlines()[0]
    names = ""
    if shutil.which("nvidia-smi"):
        names = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout.strip()  # fmt: skip
    return Check("gpu", True, names or driver, needed=False)


def _privileged() -> bool:
    if os.geteuid() == 0:
        return True
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            caps = int(line.split()[1], 16)
            return bool(caps & (1 << CAP_CHECKPOINT_RESTORE)) and bool(caps & (1 << CAP_SYS_ADMIN))
    return False


def _criu(criu: Path, *args: str) -> tuple[int, str]:
    try:
        result = subprocess.run(
            [str(criu), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return result.returncode, result.stdout + result.stderr
