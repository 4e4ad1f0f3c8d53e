"""`coldsnap doctor`: what it prints and exits with for needed and informational checks."""

from __future__ import annotations

import argparse

import pytest

from coldsnap.cli.main import main
from coldsnap.cli.system import cmd_doctor
from coldsnap.engine import doctor
from tests.conftest import ServerHandle


def test_doctor_fails_only_on_needed_checks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    checks = [doctor.Check("criu", True, "3.19"),
              doctor.Check("userfaultfd (lazy restore)", False, "no", needed=False)]
    monkeypatch.setattr(doctor, "run_checks", lambda settings: checks)
    assert cmd_doctor(argparse.Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert "ok   criu: 3.19" in out and "--   userfaultfd (lazy restore): no" in out
    checks.append(doctor.Check("overlayfs", False, "missing", "load the overlay module"))
    assert cmd_doctor(argparse.Namespace(json=False)) == 1
    out = capsys.readouterr().out
    assert "FAIL overlayfs: missing\n     fix: load the overlay module" in out
    assert "1 check(s) failed" in out


def test_doctor_fails_on_a_warm_memory_size_the_server_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLDSNAP_WARM_MEMORY_MB", "1GB")
    assert cmd_doctor(argparse.Namespace(json=False)) == 1
    out = capsys.readouterr().out
    assert "FAIL warm memory: COLDSNAP_WARM_MEMORY_MB='1GB': use a whole number of MB" in out
    assert "1 setting(s) to fix: `coldsnap serve` refuses to start with it" in out
    monkeypatch.setenv("COLDSNAP_WARM_MEMORY_MB", "5")
    cmd_doctor(argparse.Namespace(json=False))
    assert "8 MB kept warm for restores (COLDSNAP_WARM_MEMORY_MB=5)" in capsys.readouterr().out


def test_stop_stops_the_server_and_says_when_none_runs(
    server_factory: type[ServerHandle],
) -> None:
    server = server_factory().start()
    assert server.proc is not None
    out = server.cli("stop").stdout
    assert f"stopped the coldsnap server (pid {server.proc.pid})" in out
    assert server.proc.wait(timeout=30) == 0
    again = server.cli("stop").stdout
    assert again.startswith("no coldsnap server answers on ") and "nothing to stop" in again
    assert server.proc.poll() is not None  # and "stop" started none


def test_serve_with_an_app_file_says_to_deploy_or_run_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`coldsnap serve app.py` (Modal's `modal serve app.py`) names deploy and run;
    another stray argument keeps argparse's own message."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "port_app.py"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "`coldsnap serve` runs the coldsnap server itself and takes no app file " \
        "(port_app.py)" in err, err
    assert "`coldsnap deploy port_app.py`" in err and "`coldsnap run port_app.py`" in err
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--engine", "none", "extra"])
    assert exited.value.code == 2
    assert "coldsnap: error: unrecognized arguments: extra" in capsys.readouterr().err
