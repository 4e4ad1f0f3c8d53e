"""describe_timings: a boot's steps in boot order, the first input's run named as one."""

from __future__ import annotations

from coldsnap.wire.timings import describe_timings


def test_steps_come_in_boot_order_whatever_the_dict_order() -> None:
    timings = {"enter_s": 0.003, "restore_s": 0.12, "boot_s": 0.2}
    assert describe_timings(timings) == "restore 120 ms, enter 3 ms"


def test_the_first_input_reads_as_its_run_time_not_a_wait() -> None:
    # A call that slept 4 s: the line must not read as 4 s of latency before the input.
    described = describe_timings({"restore_s": 0.1, "first_input_s": 4.001})
    assert described == "restore 100 ms, first input ran 4001 ms"
