"""COLDSNAP_HOST_RCU: the host's RCU mode, read and set (on a stand-in file and on the
real host), and `coldsnap doctor`'s line for it (coldsnap/engine/rcu.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap.engine.rcu import RCU_EXPEDITED, apply_rcu_mode, rcu_mode


def test_expedited_is_set_and_keep_leaves_it(tmp_path: Path) -> None:
    knob = tmp_path / "rcu_expedited"
    knob.write_text("0\n")
    apply_rcu_mode("keep", knob)
    assert rcu_mode(knob) == "normal"
    apply_rcu_mode("expedited", knob)
    assert knob.read_text() == "1" and rcu_mode(knob) == "expedited"


def test_a_kernel_without_the_knob_is_left_alone(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    assert rcu_mode(absent) == "unavailable"
    apply_rcu_mode("expedited", absent)
    assert not absent.exists()


def test_a_bad_mode_says_what_works(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="COLDSNAP_HOST_RCU='fast': use expedited"):
        apply_rcu_mode("fast", tmp_path / "rcu_expedited")


def test_the_real_knob_is_set_and_doctor_reports_it() -> None:
    from coldsnap.engine.doctor import criu_usable, run_checks
    from coldsnap.settings import Settings

    settings = Settings.from_env()
    if not criu_usable(settings) or not RCU_EXPEDITED.exists():
        pytest.skip("needs root with CRIU and a kernel with /sys/kernel/rcu_expedited")
    if settings.host_rcu == "keep":
        pytest.skip("COLDSNAP_HOST_RCU=keep: the host's setting is not ours to change")
    apply_rcu_mode(settings.host_rcu)
    assert rcu_mode() == "expedited"
    [check] = [c for c in run_checks(settings) if c.name == "RCU grace periods"]
    assert check.detail == "expedited"
