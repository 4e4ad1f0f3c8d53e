"""coldsnap doctor's pure checks."""

from __future__ import annotations

import pytest

from coldsnap.snapshot import doctor


@pytest.mark.parametrize(("release", "ok"), [
    ("6.18.44-fc-v657", True), ("6.7.0", True), ("6.6.30-generic", False),
    ("5.15.0-105-generic", False), ("weird", False),
])
def test_the_kernel_must_pass_whiteouts_up_through_layer_overlays(
    monkeypatch: pytest.MonkeyPatch, release: str, ok: bool
) -> None:
    monkeypatch.setattr(doctor.platform, "release", lambda: release)
    check = doctor._check_kernel()
    assert (check.ok, check.detail) == (ok, release)
    assert ("Linux 6.7 or newer" in check.fix) is not ok
