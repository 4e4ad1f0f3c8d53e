"""The host's transparent huge pages mode, which the criu engine sets at start.

A restore writes a snapshot's whole heap into fresh memory; in 2 MiB pages that is a
fault per 2 MiB instead of one per 4 KiB (big restores ~1.4x faster, see the README;
the runtime also marks big heaps MADV_HUGEPAGE before the dump: _runtime/memory.py).
``COLDSNAP_HOST_THP`` names the mode the engine sets (``always`` by default);
``keep`` leaves the host's setting alone, as rcu.py's setting does for RCU grace
periods.
"""

from __future__ import annotations

from pathlib import Path

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
THP_MODES = ("always", "madvise", "never")


def thp_mode() -> str:
    """The host's transparent huge pages mode (the bracketed word), or "unavailable"."""
    try:
        text = THP.read_text()
    except OSError:
        return "unavailable"
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()


def set_thp_mode(mode: str) -> None:
    if mode not in THP_MODES:
        raise ValueError(f"COLDSNAP_HOST_THP={mode!r}: use one of {', '.join(THP_MODES)}, "
                         "or keep to leave the host's setting alone")
    if thp_mode() != mode:
        THP.write_text(mode)
