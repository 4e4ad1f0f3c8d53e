"""Pure parts of the dashboard's views: call rates and the plot's series."""

from __future__ import annotations

from coldsnap.server.dashboard.views import CallRates, boot_points, verify_status


def test_call_rate_is_the_change_over_the_last_minute() -> None:
    rates = CallRates(window_s=60.0)
    key = ("app", "f", "v1")
    assert rates.per_minute(key, 0, now=0.0) is None  # no rate from one sample
    assert rates.per_minute(key, 30, now=30.0) == 60.0  # 30 calls in half a minute
    assert rates.per_minute(key, 30, now=200.0) == 0.0  # quiet since: old samples drop


def test_boot_points_split_cold_restored_and_snapshot_creating() -> None:
    def boot(kind: str, at: float, seconds: float, ok: bool = True) -> dict:
        series = {"plain": "cold", "fallback": "cold", "restored": "restored",
                  "snapshot-created": "snapshot-creating"}.get(kind)
        return {"kind": kind, "ok": ok, "created_at": at, "series": series,
                "timings": {"boot_s": seconds}}

    rows = [boot("restored", 3.0, 0.2), boot("snapshot-created", 2.0, 3.0),
            boot("plain", 1.0, 2.5), boot("failed", 0.5, 1.0, ok=False)]
    points = boot_points(rows)
    assert points == {"cold": [{"x": 1000.0, "y": 2.5}],
                      "restored": [{"x": 3000.0, "y": 0.2}],
                      "snapshot-creating": [{"x": 2000.0, "y": 3.0}]}


def test_verify_status_names_the_last_check_and_who_made_it() -> None:
    assert verify_status(None, digests=True) == ("not checked yet", "unchecked")
    assert verify_status(None, digests=False)[1] == "no-digests"
    text, state = verify_status({"ok": True, "by": "restore", "at": 0.0, "detail": None},
                                digests=True)
    assert state == "ok" and text.startswith("ok at ") and text.endswith("(by restore)")
    text, state = verify_status({"ok": False, "by": "snapshots verify", "at": 0.0,
                                 "detail": "image file pages-1.img is missing"}, digests=True)
    assert state == "damaged"
    assert text.endswith("(by snapshots verify): image file pages-1.img is missing")
