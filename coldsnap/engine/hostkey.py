"""The host key: what must match between the host that dumped and the one restoring.

A restored process keeps running machine code chosen for the CPU it was dumped
on (ISA extensions picked at import time, the xsave layout), against the
kernel's ABI, with CRIU's image format and the interpreter's memory layout. A
snapshot is only restored where all of these are the same.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

# CPU flags that change which code paths numpy/torch pick, or the xsave layout.
ISA_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2",
    "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "xsave", "xsaveopt", "xsavec", "xsaves", "pku", "la57",
)


def cpu_facts(cpuinfo: str) -> dict[str, object]:
    model, flags = "unknown", set[str]()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "model name" and model == "unknown":
            model = value.strip()
        elif name == "flags" and not flags:
            flags = set(value.split())
    return {"cpu": model, "isa": sorted(flags.intersection(ISA_FLAGS))}


def criu_version(criu_path: Path) -> str:
    try:
        out = subprocess.run(
            [str(criu_path), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return out.split("\n")[0].replace("Version:", "").strip() or "unknown"


def host_facts(criu_path: Path) -> dict[str, object]:
    return {
        **cpu_facts(Path("/proc/cpuinfo").read_text()),
        "kernel": platform.release(),
        "criu": criu_version(criu_path),
        "python": ".".join(map(str, sys.version_info[:3])),
    }


def host_key(facts: dict[str, object]) -> str:
    """16 hex digits naming ``facts``; equal facts give equal keys."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
