"""The real runtime in a subprocess, driven through the container protocol."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.wire import serialization
from tests._runtime.harness import RuntimeSession


@pytest.fixture
def sessions() -> Iterator[list[RuntimeSession]]:
    started: list[RuntimeSession] = []
    yield started
    for session in started:
        session.close()


def start(sessions: list[RuntimeSession], app: str, tag: str, **kwargs: object) -> RuntimeSession:
    session = RuntimeSession.for_app(app, tag, **kwargs)  # type: ignore[arg-type]
    sessions.append(session)
    return session


ORDER_APP = '''
import os
import coldsnap

app = coldsnap.App("order")
EVENTS = []

class Base:
    @coldsnap.enter(snap=True)
    def base_pre(self):
        EVENTS.append("Base.base_pre")

    @coldsnap.enter()
    def base_post(self):
        EVENTS.append("Base.base_post")

@app.cls(enable_memory_snapshot=True)
class Ordered(Base):
    @coldsnap.enter(snap=True)
    def z_pre(self):
        EVENTS.append("Ordered.z_pre")

    @coldsnap.enter(snap=True)
    def a_pre(self):
        EVENTS.append("Ordered.a_pre")

    @coldsnap.enter(snap=False)
    def post(self):
        EVENTS.append("Ordered.post:" + os.environ.get("PHASE", "-"))

    @coldsnap.method()
    def events(self):
        return list(EVENTS)

    @coldsnap.exit()
    def bye(self):
        with open(os.environ["MARKER"], "w") as f:
            f.write(",".join(EVENTS))
'''


def test_class_lifecycle_order_handshake_and_exit(
    sessions: list[RuntimeSession], tmp_path: Path
) -> None:
    marker = tmp_path / "exit-marker"
    session = RuntimeSession.start(
        ORDER_APP, "Ordered", snapshot=True, env={"MARKER": str(marker), "PHASE": "snapshot"}
    )
    sessions.append(session)
    header, _ = session.expect("ready_to_snapshot")
    assert set(header["timings"]) == {"import_s", "enter_snap_s"}
    session.send("resume", container_id="cs-r1", env={"PHASE": "restored"}, seed=1, restored=True)
    header, _ = session.expect("ready")
    assert {"after_restore_s", "enter_s"} <= set(header["timings"])
    assert session.call_value("events") == [
        "Base.base_pre", "Ordered.z_pre", "Ordered.a_pre",
        "Base.base_post", "Ordered.post:restored",
    ]
    assert not marker.exists()
    session.send("shutdown")
    assert session.wait_exit() == 0
    assert marker.read_text().endswith("Ordered.post:restored")


def test_plain_boot_runs_every_enter_hook_without_a_handshake(
    sessions: list[RuntimeSession], tmp_path: Path
) -> None:
    session = RuntimeSession.start(ORDER_APP, "Ordered", env={"MARKER": str(tmp_path / "m")})
    sessions.append(session)
    session.expect("ready")
    assert session.call_value("events") == [
        "Base.base_pre", "Ordered.z_pre", "Ordered.a_pre",
        "Base.base_post", "Ordered.post:-",
    ]


def test_embedder_resume_applies_env_container_id_and_seed(
    sessions: list[RuntimeSession],
) -> None:
    session = start(
        sessions, "embedder_like.py", "Embedder", snapshot=True,
        env={"EMBEDDER_STAGE": "snapshot-phase"},
    )
    session.expect("ready_to_snapshot")
    session.send(
        "resume", container_id="cs-restored-7",
        env={"EMBEDDER_STAGE": None, "EMBEDDER_DEVICE": "cuda"}, seed=1234, restored=True,
    )
    session.expect("ready")
    state = session.call_value("state")
    assert state["events"] == ["base_load", "load", "setup"]
    assert state["snapshot_phase_env"] == "snapshot-phase"
    assert state["stage_env"] is None  # null in resume unsets
    assert state["device"] == "cuda"
    assert state["container_id"] == "cs-restored-7"
    assert state["random_after_restore"] == random.Random(1234).random()
    vectors = session.call_value("run", ["what is the meaning of life?", "hi"])
    assert len(vectors) == 2 and abs(sum(x * x for x in vectors[0]) - 1) < 1e-9


def test_logs_from_hooks_and_calls_reach_the_log_pipe(sessions: list[RuntimeSession]) -> None:
    session = start(sessions, "embedder_like.py", "Embedder", snapshot=True)
    session.expect("ready_to_snapshot")
    session.wait_for_log("load: model ready on cpu")
    session.send("resume", container_id="cs-2", env={}, seed=3, restored=True)
    session.expect("ready")
    session.call_value("run", ["a", "b", "c"])
    logs = session.wait_for_log("run: encoding 3 sentences")
    lines = logs.splitlines()
    assert lines.index("base_load: before snapshot") < lines.index("load: model ready on cpu")
    assert lines.index("setup: model on cpu") < lines.index("run: encoding 3 sentences")


def test_plain_function_with_snapshot_snapshots_after_import(
    sessions: list[RuntimeSession],
) -> None:
    session = start(sessions, "square.py", "square", snapshot=True)
    header, _ = session.expect("ready_to_snapshot")
    assert "enter_snap_s" not in header["timings"]
    session.send("resume", container_id="cs-sq", env={}, seed=5, restored=True)
    session.expect("ready")
    assert session.call_value(None, 12) == 144
    session.wait_for_log("square(12)")


def test_exception_in_snap_hook_fails_the_boot(sessions: list[RuntimeSession]) -> None:
    session = start(sessions, "failing_hooks.py", "Broken", snapshot=True)
    header, blob = session.expect("boot_failed")
    assert header["stage"] == "enter(snap=True) hook Broken.load"
    assert header["message"] == (
        "WeightsMissing: no weights at /model.bin. "
        "Fix the error (traceback in the container's log) and deploy again."
    )
    assert blob is not None
    exc = serialization.loads_exception(blob)
    assert type(exc).__name__ == "WeightsMissing"
    # The traceback starts at the user's hook, not in the runtime.
    remote_tb = exc.__notes__[0]
    assert remote_tb.splitlines()[2].strip().endswith("in load"), remote_tb
    assert "lifecycle.py" not in remote_tb
    assert session.wait_exit() == 1
    session.expect_closed()  # no ready_to_snapshot ever: nothing to snapshot
    assert "Traceback" in session.wait_for_log("WeightsMissing")


def test_exception_in_post_restore_hook_and_import_name_the_stage(
    sessions: list[RuntimeSession],
) -> None:
    session = start(
        sessions, "failing_hooks.py", "Broken", snapshot=True,
        env={"FAILING_HOOKS_STAGE": "enter"},
    )
    session.expect("ready_to_snapshot")
    session.send("resume", container_id="cs-f", env={}, seed=1, restored=True)
    header, _ = session.expect("boot_failed")
    assert header["stage"] == "enter(snap=False) hook Broken.setup"
    assert session.wait_exit() == 1

    session = start(
        sessions, "failing_hooks.py", "Broken", env={"FAILING_HOOKS_STAGE": "import"}
    )
    header, _ = session.expect("boot_failed")
    assert header["stage"] == "import app.py"
    assert "import-time failure on purpose" in header["message"]


def test_unknown_tag_fails_the_boot_listing_what_exists(sessions: list[RuntimeSession]) -> None:
    session = start(sessions, "square.py", "cube")
    header, _ = session.expect("boot_failed")
    assert header["stage"] == "import app.py"
    assert "has no function or class named 'cube'; it has: big, fail, fail_builtin, square" in (
        header["message"]
    )


def test_missing_image_import_fails_the_boot_in_a_container(
    sessions: list[RuntimeSession],
) -> None:
    source = (
        "import coldsnap\nimage = coldsnap.Image.from_host()\napp = coldsnap.App('imp')\n"
        "with image.imports():\n    import coldsnap_not_installed\n"
        "@app.function()\ndef f():\n    return 1\n"
    )
    session = RuntimeSession.start(source, "f")
    sessions.append(session)
    header, _ = session.expect("boot_failed")
    assert header["message"].startswith("ModuleNotFoundError: No module named")
    assert "add its package to the image (Image.pip_install(...))" in header["message"]


def test_exit_hook_runs_on_sigterm_and_on_eof(
    sessions: list[RuntimeSession], tmp_path: Path
) -> None:
    import os
    import signal

    marker = tmp_path / "sigterm"
    session = start(sessions, "exit_hook.py", "Worker", env={"EXIT_HOOK_MARKER": str(marker)})
    session.expect("ready")
    assert session.call_value("work", 1) == 2
    os.kill(session.container.pid, signal.SIGTERM)
    assert session.wait_exit() == 0
    assert marker.read_text() == "exited after 1 calls\n"
    session.wait_for_log("exit hook: 1 calls served")

    marker = tmp_path / "eof"
    session = start(sessions, "exit_hook.py", "Worker", env={"EXIT_HOOK_MARKER": str(marker)})
    session.expect("ready")
    session.container.ctrl_in.close()
    assert session.wait_exit() == 0
    assert marker.read_text() == "exited after 0 calls\n"


def test_shutdown_during_the_handshake_exits_cleanly(sessions: list[RuntimeSession]) -> None:
    session = start(sessions, "embedder_like.py", "Embedder", snapshot=True)
    session.expect("ready_to_snapshot")
    session.send("shutdown")
    assert session.wait_exit() == 0
