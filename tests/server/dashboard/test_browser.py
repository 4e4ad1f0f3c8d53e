"""The dashboard in a real browser (Debian's chromium, driven by Playwright), against
a real server with CRIU: sign in with `coldsnap dashboard`'s URL, see a deployed app,
make a call and watch its boot appear with its steps and the plot take it, and see
the error of a snapshot that failed, and a snapshot's warnings and digest check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, write_app

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 90_000  # the machine is loaded: a first boot with a dump takes seconds

# enter(snap=True) draws from `random`: the snapshot is made with an rng_drawn warning.
SNAPPED = """
import random

import coldsnap

app = coldsnap.App("test-dash")


@app.cls(enable_memory_snapshot=True)
class Greeter:
    @coldsnap.enter(snap=True)
    def load(self):
        print("greeter loaded")
        self.greeting = "hello"
        self.draw = random.random()

    @coldsnap.method()
    def greet(self, name: str) -> str:
        return f"{self.greeting} {name}"
"""
GREET = ("import coldsnap\n"
         "print(coldsnap.Cls.from_name('test-dash', 'Greeter')().greet.remote('you'))\n")
# As in tests/server/test_snapshot_fallback.py: enter(snap=True) holds /dev/zero open and
# the runtime is told /dev/zero is a GPU device, so the snapshot is refused.
REFUSED = """
import os

import coldsnap

os.environ["COLDSNAP_GPU_DEVICE_PREFIX"] = "/dev/zero"
app = coldsnap.App("test-dash-refused")


@app.cls(enable_memory_snapshot=True)
class Refused:
    @coldsnap.enter(snap=True)
    def open_device(self):
        self.device = open("/dev/zero", "rb")

    @coldsnap.method()
    def ping(self) -> str:
        return "pong"
"""
PING = ("import coldsnap\n"
        "print(coldsnap.Cls.from_name('test-dash-refused', 'Refused')().ping.remote())\n")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip(f"Chromium from Debian's archive is not installed at {CHROMIUM} "
                    "(scripts/setup.sh installs it: apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _points(page: Any) -> int:
    return int(page.get_attribute("#boot-plot", "data-points") or 0)


def test_sign_in_watch_a_boot_and_a_failed_snapshot(
    browser: Any, server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()
    server = server_factory("criu").start()
    server.cli("deploy", str(write_app(tmp_path, "dash_app", SNAPPED)))
    url = json.loads(server.cli("dashboard", "--json").stdout)["url"]
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)

    page.goto(url)  # signs in, lands on the apps page
    assert page.url == server.http + "/dashboard/"
    page.wait_for_selector('#apps tr[data-app="test-dash"]')

    page.goto(server.http + "/dashboard/boots")
    page.wait_for_selector("#no-boots")
    assert _points(page) == 0
    assert server.python(GREET).stdout.strip() == "hello you"
    made = page.wait_for_selector('#boots tr[data-kind="snapshot-created"]')  # no reload
    assert "dump" in made.inner_text() and "enter(snap=True)" in made.inner_text()
    page.wait_for_function("document.getElementById('boot-plot').dataset.points == '1'")

    server.cli("apps", "drain", "test-dash")  # the next call restores
    assert server.python(GREET).stdout.strip() == "hello you"
    restored = page.wait_for_selector('#boots tr[data-kind="restored"]')
    assert "restore" in restored.inner_text()
    page.wait_for_function("document.getElementById('boot-plot').dataset.points == '2'")
    assert page.evaluate("Chart.getChart('boot-plot').data.datasets"
                         ".find(d => d.label === 'restored').data.length") == 1

    page.goto(server.http + "/dashboard/functions")
    row = page.wait_for_selector('#functions tr[data-function="test-dash.Greeter"]')
    containers = row.query_selector_all(".container")
    assert len(containers) == int(row.query_selector(".idle").inner_text()) + int(
        row.query_selector(".busy").inner_text()) >= 1

    page.goto(server.http + "/dashboard/apps/test-dash")
    page.wait_for_function("document.getElementById('log-tail').textContent"
                           ".includes('greeter loaded')")

    server.cli("deploy", str(write_app(tmp_path, "dash_refused", REFUSED)))
    page.goto(server.http + "/dashboard/snapshots")
    assert server.python(PING).stdout.strip() == "pong"
    failed = page.wait_for_selector('#snapshots tr[data-status="failed"]')
    assert "test-dash-refused" in failed.inner_text()
    assert failed.query_selector(".last-error").inner_text().startswith("refused: ")
    ready = page.query_selector('#snapshots tr[data-status="ready"]')
    assert ready is not None and "test-dash" in ready.inner_text()
    # Both boots continued from a restore: the snapshot-creating one and the restored one.
    assert ready.query_selector(".restores").inner_text() == "2"
    [warning] = ready.query_selector_all('.warnings li.warning[data-kind="rng_drawn"]')
    assert warning.inner_text().startswith("rng_drawn random: numbers were drawn")
    verify = ready.query_selector(".verify")
    assert verify.get_attribute("data-verify") == "ok", verify.inner_text()
    assert verify.inner_text().endswith("(by restore)")
    assert failed.query_selector(".warnings").inner_text() == "none"


def test_a_browser_without_a_session_is_sent_to_sign_in(
    browser: Any, server_factory: type[ServerHandle]
) -> None:
    server = server_factory().start()
    page = browser.new_page()
    page.goto(server.http + "/dashboard/snapshots")
    assert page.url == server.http + "/dashboard/login"
    page.fill('input[name="token"]', "wrong")
    page.click('button[type="submit"]')
    assert "That is not this server's token" in page.inner_text("#login-error")
    page.fill('input[name="token"]', server.settings.token_path.read_text().strip())
    page.click('button[type="submit"]')
    page.wait_for_url(server.http + "/dashboard/")
    assert page.inner_text("#no-apps").startswith("No apps yet")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts can't read it
    page.click("text=Sign out")
    page.wait_for_url(server.http + "/dashboard/login")
    page.goto(server.http + "/dashboard/")
    assert page.url == server.http + "/dashboard/login"


CHATTY = """
import coldsnap

app = coldsnap.App("test-dash-chatty")


@app.function()
def chatter(n: int) -> int:
    for i in range(n):
        print(f"chatter line {i}", flush=True)
    return n
"""
CHATTER = ("import coldsnap\n"
           "print(coldsnap.Function.from_name('test-dash-chatty', 'chatter').remote(300))\n")
# How far the log box is scrolled up from its bottom, in pixels.
FROM_BOTTOM = ("(t => t.scrollHeight - t.clientHeight - t.scrollTop)"
               "(document.getElementById('log-tail'))")


def _wait_for_refreshes(page: Any, count: int) -> None:
    """Wait until htmx has swapped the live part in ``count`` more times."""
    page.evaluate("window.swaps = 0; document.addEventListener('htmx:afterSwap', "
                  "() => { window.swaps += 1; })")
    page.wait_for_function(f"window.swaps >= {count}")


def test_the_log_tail_keeps_its_newest_lines_in_view(
    browser: Any, server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = server_factory().start()
    server.cli("deploy", str(write_app(tmp_path, "dash_chatty", CHATTY)))
    assert server.python(CHATTER).stdout.strip() == "300"
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(json.loads(server.cli("dashboard", "--json").stdout)["url"])
    page.goto(server.http + "/dashboard/apps/test-dash-chatty")
    page.wait_for_function("document.getElementById('log-tail').textContent"
                           ".includes('chatter line 299')")
    assert page.evaluate("(t => t.scrollHeight > 2 * t.clientHeight)"
                         "(document.getElementById('log-tail'))")  # it does scroll
    assert page.evaluate(FROM_BOTTOM) <= 24  # on load: at the newest line

    _wait_for_refreshes(page, 2)
    assert page.evaluate(FROM_BOTTOM) <= 24  # still, after refreshes

    page.evaluate("document.getElementById('log-tail').scrollTop = 100")  # reading older
    _wait_for_refreshes(page, 2)
    assert page.evaluate("document.getElementById('log-tail').scrollTop") == 100
