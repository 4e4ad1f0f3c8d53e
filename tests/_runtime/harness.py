"""Runs the real container runtime in a subprocess (NoneEngine) and speaks the protocol."""

from __future__ import annotations

import queue
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from coldsnap.engine.base import Container, ContainerSpec
from coldsnap.engine.none_engine import NoneEngine
from coldsnap.wire import framing, serialization

APPS = Path(__file__).resolve().parents[1] / "apps"


def runtime_spec(
    source: str, tag: str, *, snapshot: bool = False, env: dict[str, str] | None = None
) -> ContainerSpec:
    return ContainerSpec(
        argv=[sys.executable, "-m", "coldsnap._runtime"],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "COLDSNAP_APP_FILE": "app.py",
            "COLDSNAP_TAG": tag,
            "COLDSNAP_SNAPSHOT": "1" if snapshot else "0",
            "COLDSNAP_CONTAINER_ID": "cs-snapshot-phase" if snapshot else "cs-plain",
            **(env or {}),
        },
        files={"app.py": source.encode()},
        snapshot_phase=snapshot,
    )


class RuntimeSession:
    """One container: messages from ctrl-out and lines from the log pipe land in queues,
    so every read has a timeout and a broken runtime fails the test instead of hanging it."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.messages: queue.Queue[tuple[dict[str, Any], bytes | None] | None] = queue.Queue()
        self.log_lines: list[str] = []
        self._log_lock = threading.Lock()
        threading.Thread(target=self._pump_messages, daemon=True).start()
        threading.Thread(target=self._pump_logs, daemon=True).start()

    @classmethod
    def start(
        cls,
        source: str,
        tag: str,
        *,
        snapshot: bool = False,
        env: dict[str, str] | None = None,
        engine: Any = None,
    ) -> RuntimeSession:
        """Start ``python -m coldsnap._runtime`` serving ``tag`` of the app ``source``."""
        spec = runtime_spec(source, tag, snapshot=snapshot, env=env)
        if engine is not None:
            return cls(engine.start(spec))
        with warnings.catch_warnings():
            # NoneEngine.start drops its Popen while the child runs, and Popen.__del__
            # warns about that (ResourceWarning); the Container reaps the child itself.
            warnings.simplefilter("ignore", ResourceWarning)
            return cls(NoneEngine().start(spec))

    @classmethod
    def for_app(cls, app_name: str, tag: str, **kwargs: Any) -> RuntimeSession:
        return cls.start((APPS / app_name).read_text(), tag, **kwargs)

    def _pump_messages(self) -> None:
        try:
            while True:
                self.messages.put(framing.read_message(self.container.ctrl_out))
        except (framing.ChannelClosed, ValueError, OSError):
            self.messages.put(None)

    def _pump_logs(self) -> None:
        for raw in self.container.logs:
            with self._log_lock:
                self.log_lines.append(raw.decode(errors="replace").rstrip("\n"))

    def expect(
        self, message_type: str, timeout: float = 15.0
    ) -> tuple[dict[str, Any], bytes | None]:
        try:
            item = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no {message_type!r} message within {timeout}s; logs:\n{self.logs()}"
            ) from None
        if item is None:
            raise AssertionError(
                f"runtime closed ctrl-out before {message_type!r}; logs:\n{self.logs()}"
            )
        header, blob = item
        assert header["type"] == message_type, (header, self.logs())
        return header, blob

    def expect_closed(self, timeout: float = 15.0) -> None:
        item = self.messages.get(timeout=timeout)
        assert item is None, f"expected ctrl-out to close, got {item}"

    def send(self, message_type: str, blob: bytes | None = None, **fields: Any) -> None:
        framing.write_message(self.container.ctrl_in, {"type": message_type, **fields}, blob)

    def call(
        self, method: str | None, *args: Any, call_id: str = "c1", **kwargs: Any
    ) -> tuple[dict[str, Any], bytes | None]:
        self.send("call", serialization.dumps_args(args, kwargs), call_id=call_id, method=method)
        return self.expect("result")

    def call_value(self, method: str | None, *args: Any, **kwargs: Any) -> Any:
        header, blob = self.call(method, *args, **kwargs)
        assert blob is not None
        if not header["ok"]:
            raise serialization.loads_exception(blob)
        return serialization.cloudpickle.loads(blob)

    def logs(self) -> str:
        with self._log_lock:
            return "\n".join(self.log_lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs():
                return self.logs()
            time.sleep(0.01)
        raise AssertionError(f"{text!r} never appeared in the logs:\n{self.logs()}")

    def wait_exit(self, timeout: float = 15.0) -> int | None:
        return self.container.wait(timeout)

    def close(self) -> None:
        self.container.kill()
