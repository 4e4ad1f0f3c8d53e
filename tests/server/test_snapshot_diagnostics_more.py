"""More snapshot diagnostics with a real server and CRIU: numpy's RNG and memory growth
warnings, the last digest check of a snapshot, and `snapshots why` after a restore
that CRIU refused and after an image step changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

# numpy draws in the first hook; the last one grows memory by ~96 MiB of touched pages.
# from_host: the server's own Python and virtualenv, where numpy is installed.
GROWN = """
import coldsnap

app = coldsnap.App("test-snapshot-grown", image=coldsnap.Image.from_host())


@app.cls(enable_memory_snapshot=True)
class Grown:
    @coldsnap.enter(snap=True)
    def draw(self):
        import numpy
        self.sample = numpy.random.rand(3)

    @coldsnap.enter(snap=True)
    def allocate(self):
        self.blob = b"\\x01" * (96 << 20)

    @coldsnap.method()
    def ping(self) -> str:
        return "pong"
"""

STEPPED = """
import coldsnap

image = coldsnap.Image.from_host().run_commands("echo {word} > /step.txt")
app = coldsnap.App("test-snapshot-stepped", image=image)


@app.cls(enable_memory_snapshot=True)
class Stepped:
    @coldsnap.enter(snap=True)
    def load(self):
        self.word = open("/step.txt").read().strip()

    @coldsnap.method()
    def ping(self) -> str:
        return self.word
"""

RESTORED = """
import coldsnap

app = coldsnap.App("test-snapshot-refused-restore")


@app.cls(enable_memory_snapshot=True)
class Plain:
    @coldsnap.enter(snap=True)
    def load(self):
        self.answer = "fine"

    @coldsnap.method()
    def ping(self) -> str:
        return self.answer
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _call(srv: ServerHandle, app: str, cls: str) -> str:
    return srv.python("import coldsnap\n"
                      f"print(coldsnap.Cls.from_name({app!r}, {cls!r})().ping.remote())\n"
                      ).stdout.strip()


def _ready(srv: ServerHandle, app: str) -> dict[str, Any]:
    snapshots = json.loads(srv.cli("snapshots", "ls", "--json").stdout)
    [row] = [s for s in snapshots if s.get("app") == app and s["status"] == "ready"]
    return dict(row)


def _warnings(srv: ServerHandle, key: str) -> dict[str, list[str]]:
    detail = json.loads(srv.cli("snapshots", "inspect", key, "--json").stdout)
    found: dict[str, list[str]] = {}
    for warning in detail["warnings"]:
        found.setdefault(warning["kind"], []).append(warning["message"])
    return found


def test_numpy_draws_and_memory_growth_in_the_last_hook_warn(srv: ServerHandle,
                                                             tmp_path: Path) -> None:
    srv.cli("deploy", str(write_app(tmp_path, "grown", GROWN)))
    assert _call(srv, "test-snapshot-grown", "Grown") == "pong"
    warnings = _warnings(srv, _ready(srv, "test-snapshot-grown")["key"])
    assert set(warnings) == {"rng_drawn", "memory_growth"}, warnings
    [rng] = warnings["rng_drawn"]
    assert rng.startswith("numpy.random: numbers were drawn from its global RNG")
    assert "coldsnap reseeds random, numpy and torch at restore" in rng
    [grown] = warnings["memory_growth"]
    assert grown.startswith("memory grew from ") and "Grown.allocate" in grown, grown
    assert "the last enter(snap=True) hook" in grown
    assert "snapshot warning: memory grew from" in srv.cli("logs", "test-snapshot-grown").stdout


def test_why_names_a_changed_image_step(srv: ServerHandle, tmp_path: Path) -> None:
    app, app_file = "test-snapshot-stepped", tmp_path / "stepped.py"
    write_app(tmp_path, "stepped", STEPPED.format(word="one"))
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Stepped") == "one"
    write_app(tmp_path, "stepped", STEPPED.format(word="two"))
    srv.cli("deploy", str(app_file))
    assert _call(srv, app, "Stepped") == "two"
    why = json.loads(srv.cli("snapshots", "why", app, "Stepped", "--json").stdout)[0]
    [step] = [c for c in why["changes"] if c["input"] == "image"]
    assert "echo one > /step.txt" in step["summary"], step
    assert "echo two > /step.txt" in step["summary"], step
    assert step["summary"].startswith("image steps: -{"), step
    text = srv.cli("snapshots", "why", app, "Stepped").stdout
    assert "what changed:" in text and "image steps: -" in text and "echo two" in text


def _break_for_criu(snapshot: Path) -> None:
    """Garble the snapshot's inventory image and record the garbled bytes' size and
    digest as the published ones: the digest check passes, and CRIU refuses it."""
    images, meta_path = snapshot / "images", snapshot / "meta.json"
    garbled = b"not a CRIU image" * 4
    (images / "inventory.img").write_bytes(garbled)
    meta = json.loads(meta_path.read_text())
    meta["files"]["inventory.img"] = len(garbled)
    meta["digests"]["inventory.img"] = "sha256:" + hashlib.sha256(garbled).hexdigest()
    meta_path.write_text(json.dumps(meta))


def test_why_after_a_restore_criu_refused_names_the_cause(srv: ServerHandle,
                                                          tmp_path: Path) -> None:
    app = "test-snapshot-refused-restore"
    srv.cli("deploy", str(write_app(tmp_path, "refused_restore", RESTORED)))
    assert _call(srv, app, "Plain") == "fine"
    made = _ready(srv, app)
    _break_for_criu(Path(json.loads(srv.cli("snapshots", "inspect", made["key"],
                                            "--json").stdout)["path"]))
    srv.cli("apps", "drain", app)
    assert _call(srv, app, "Plain") == "fine"  # a fallback boot
    assert stats(srv, app)["boots"][0]["kind"] == "fallback"
    [failed] = [s for s in json.loads(srv.cli("snapshots", "ls", "--json").stdout)
                if s.get("app") == app]
    assert failed["status"] == "failed" and failed["last_error"].startswith("restore: ")

    srv.cli("snapshots", "rm", made["key"])  # clears the failure: the next boot makes it
    srv.cli("apps", "drain", app)
    assert _call(srv, app, "Plain") == "fine"
    why = json.loads(srv.cli("snapshots", "why", app, "Plain", "--json").stdout)[0]
    assert why["same_inputs"] and why["current"]["key"] == why["previous"]["key"]
    [ended] = why["previous_ended"]
    assert ended["event"] == "failed" and ended["detail"] == failed["last_error"]
    text = srv.cli("snapshots", "why", app, "Plain").stdout
    assert f"same inputs, re-created because: the previous one failed ({failed['last_error']}" \
        in text, text


def test_the_last_digest_check_is_kept_by_restore_then_by_verify(srv: ServerHandle,
                                                                 tmp_path: Path) -> None:
    app = "test-snapshot-checked"
    srv.cli("deploy", str(write_app(tmp_path, "checked", RESTORED.replace(
        "test-snapshot-refused-restore", app))))
    assert _call(srv, app, "Plain") == "fine"  # made, then continued from a restore
    row = _ready(srv, app)
    assert row["last_check"]["ok"] and row["last_check"]["by"] == "restore", row
    assert row["last_check"]["at"] >= row["created_at"]
    assert "  checked   ok, by restore, " in srv.cli("snapshots", "inspect", row["key"]).stdout
    srv.cli("snapshots", "verify", row["key"])
    detail = json.loads(srv.cli("snapshots", "inspect", row["key"], "--json").stdout)
    assert detail["last_check"]["by"] == "snapshots verify" and detail["last_check"]["ok"]
    assert detail["last_check"]["at"] >= row["last_check"]["at"]


HELPED = """
import coldsnap
import whyhelper

app = coldsnap.App("test-snapshot-helped", image=coldsnap.Image.from_host())


@app.cls(enable_memory_snapshot=True)
class Helped:
    @coldsnap.enter(snap=True)
    def load(self):
        self.word = whyhelper.WORD

    @coldsnap.method()
    def ping(self) -> str:
        return self.word
"""


def test_why_names_a_changed_module_beside_the_app_and_its_line(srv: ServerHandle,
                                                                tmp_path: Path) -> None:
    app, app_file = "test-snapshot-helped", tmp_path / "helped.py"
    write_app(tmp_path, "helped", HELPED)
    for word in ("first", "second"):
        (tmp_path / "whyhelper.py").write_text(f"# a module of the app's\nWORD = {word!r}\n")
        srv.cli("deploy", str(app_file))
        assert _call(srv, app, "Helped") == word
    why = json.loads(srv.cli("snapshots", "why", app, "Helped", "--json").stdout)[0]
    [change] = [c for c in why["changes"] if c["input"] == "file"]
    assert change["file"].endswith("whyhelper.py"), change
    assert "-WORD = 'first'" in change["diff"] and "+WORD = 'second'" in change["diff"]
    assert "whyhelper.py: 1 line changed" in srv.cli("snapshots", "why", app).stdout
