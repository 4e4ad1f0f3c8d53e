"""Expedited RCU grace periods on the host: a restore no longer waits ~8 ms to join its
cgroups.

A container's processes join its cgroups before they start or are restored (so its
cgroup namespace is rooted at its own group: cgroups.py, nsinit.py). Moving a process
between cgroups takes a lock that, unless another move happened in the last few
milliseconds, waits for a full RCU grace period: about 8 ms on this project's 2-core
VMs, measured per join, and 11-17 ms of each restore inside the server (a restore is
a lone join, never a quick second one). With ``/sys/kernel/rcu_expedited`` = 1 the
kernel ends such waits early by interrupting the other CPUs instead: a join then took
about 2 ms, and the benchmark's restored boots 76-106 ms instead of 94-118 ms.

Like the THP mode, the criu engine sets it at start (``COLDSNAP_HOST_RCU=expedited``,
the default) and ``keep`` leaves the host's setting alone: expedited grace periods
cost every CPU a short interrupt per grace period, which a host that runs
latency-critical work beside coldsnap may not want.
"""

from __future__ import annotations

from pathlib import Path

RCU_EXPEDITED = Path("/sys/kernel/rcu_expedited")
MODES = ("expedited", "keep")


def rcu_mode(path: Path = RCU_EXPEDITED) -> str:
    """``expedited``, ``normal``, or ``unavailable`` (no such file: an old kernel)."""
    try:
        return "expedited" if path.read_text().strip() == "1" else "normal"
    except OSError:
        return "unavailable"


def apply_rcu_mode(mode: str, path: Path = RCU_EXPEDITED) -> None:
    """Set the host's RCU mode per ``COLDSNAP_HOST_RCU``; a kernel without the knob (or
    a read-only /sys) is left as it is: restores only wait longer there."""
    if mode not in MODES:
        raise ValueError(f"COLDSNAP_HOST_RCU={mode!r}: use expedited (the default) or keep "
                         "to leave the host's setting alone")
    if mode == "keep" or rcu_mode(path) != "normal":
        return
    try:
        path.write_text("1")
    except OSError:
        pass
