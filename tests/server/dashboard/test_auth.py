"""Sign-in logic of the dashboard: one-time codes, sessions, the token check."""

from __future__ import annotations

from coldsnap.server.dashboard.auth import DashboardAuth, Expiring


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_login_code_works_once() -> None:
    auth = DashboardAuth("the-token")
    code = auth.login_code()
    session = auth.session_for_code(code)
    assert session is not None and auth.signed_in(session)
    assert auth.session_for_code(code) is None
    assert auth.session_for_code("made-up") is None


def test_a_code_expires() -> None:
    clock = Clock()
    codes = Expiring(300.0, clock)
    code = codes.new()
    clock.now += 301
    assert not codes.take(code)


def test_only_the_server_token_signs_in() -> None:
    auth = DashboardAuth("the-token")
    assert auth.session_for_token("not-it") is None
    assert auth.session_for_token("") is None
    session = auth.session_for_token("the-token\n")  # pasted with a newline
    assert session is not None and auth.signed_in(session)
    assert not auth.signed_in(None) and not auth.signed_in("forged")


def test_a_dropped_session_is_signed_out() -> None:
    auth = DashboardAuth("t")
    session = auth.session_for_token("t")
    auth.sessions.drop(session)
    assert not auth.signed_in(session)
