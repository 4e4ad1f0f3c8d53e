"""Reading CRIU's log for the cause of a failure."""

from __future__ import annotations

from coldsnap.engine.criu import first_error


def test_the_first_real_criu_error_is_the_cause() -> None:
    log = (
        "Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not "
        "permitted\n"
        "(00.011) Warn  (compel/arch/x86/src/lib/infect.c:418): Will restore 7 with interrupted\n"
        "(00.118) Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not "
        "supported\n"
        "(00.118) Error (criu/cr-dump.c:1681): Dump files (pid: 7) failed with -1\n"
    )
    assert first_error(log) == (
        "Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported")
    assert first_error("(00.1) Warn (x): fine\n") == ""
