"""A boot's timing breakdown: the step names the runtime and engine report, in order.

The runtime sends ``timings`` with ``ready_to_snapshot`` and ``ready``, the engine
adds its own steps, and the server stores them per boot; ``apps stats`` and the
server's log show them with ``describe_timings``.
"""

from __future__ import annotations

STEP_NAMES = {
    # verify: what checking the image files' digests added once CRIU was done
    "fetch_s": "fetch",  # from the shared store (docs/store.md); fetch_bytes beside it
    "sandbox_s": "sandbox", "restore_s": "restore", "verify_s": "verify", "import_s": "import",
    "enter_snap_s": "enter(snap=True)", "dump_s": "dump", "after_restore_s": "after-restore",
    # first_input_s: how long the container's first input took to run (the call itself,
    # once the boot was done), not how long the input waited for the boot.
    "enter_s": "enter", "first_input_s": "first input ran",
}


def describe_timings(timings: dict[str, float]) -> str:
    """``"restore 120 ms, enter 3 ms"``: the steps present, in boot order."""
    return ", ".join(f"{label} {timings[name] * 1000:.0f} ms"
                     for name, label in STEP_NAMES.items() if name in timings)
